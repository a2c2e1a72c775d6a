"""Simplified sliding sync (MSC4186): lists of rooms by activity, room
subscriptions, and per-connection state so each response carries only what
changed. See service.py for the order of the work; extensions.py for the
extensions (to-device, e2ee, account data, receipts, typing)."""
