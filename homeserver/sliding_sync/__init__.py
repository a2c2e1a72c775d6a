"""Simplified sliding sync (MSC4186): the engine, its connections and its extensions."""
