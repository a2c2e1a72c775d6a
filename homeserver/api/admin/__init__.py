"""The admin API under /_synapse/admin, compatible with Synapse's.

Every endpoint is declared with `admin_endpoint`: the Router checks that the
requester is a server admin and writes the audit log entry of each change.
"""
