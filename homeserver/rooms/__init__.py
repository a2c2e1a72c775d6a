"""Rooms: the pipeline for new events, room creation, membership and reads."""
