"""Management commands of the tokens app (what they share with API keys: credentials.cli)."""
