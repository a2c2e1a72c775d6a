"""Services behind the admin API (/_synapse/admin): what server administrators may do."""
