"""Pushes to application services: which events and ephemeral data each one is
interested in (interest.py), the next transaction read from the streams
(builder.py), one queue per appservice stored in PostgreSQL (queue.py), and
the service that follows the streams and feeds the queues (service.py)."""
