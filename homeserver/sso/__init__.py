"""Signing in through upstream OpenID Connect providers, and legacy single
sign-on (m.login.sso, m.login.token) for clients that do not speak OAuth 2.0."""
