"""Outgoing email: validating the addresses people give (requestToken flows)."""
