"""Accounts: registration, passwords, access and refresh tokens, devices."""
