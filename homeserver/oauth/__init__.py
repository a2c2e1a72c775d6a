"""The built-in OAuth 2.0 authorization server: the spec's "OAuth 2.0 API"."""
