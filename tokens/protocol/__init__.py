"""The OAuth 2.0 endpoints and their plumbing: oauthlib server, client assertions, token exchange."""
