"""Project-wide REST endpoints (credential-agnostic)."""
