"""Identity servers: 3PID bindings and invites by email, over the Identity Service API."""
