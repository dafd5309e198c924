"""Management commands of the tokens app (shared among them: `cli`; with API keys: credentials.cli)."""
