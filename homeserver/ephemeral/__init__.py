"""The ephemeral side of rooms: typing notifications, read receipts and
presence, each with its endpoints' rules and its part of /sync."""
