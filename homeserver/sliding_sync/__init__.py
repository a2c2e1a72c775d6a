"""Simplified sliding sync (MSC4186): lists of rooms by activity, room
subscriptions, and per-connection state so each response carries only what
changed. See service.py for the order of the work."""
