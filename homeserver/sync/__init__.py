"""/sync: what changed for a user since a token, composed from every stream."""
