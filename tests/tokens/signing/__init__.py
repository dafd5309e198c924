"""Tests of tokens.signing."""
