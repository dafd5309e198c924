"""Tests of tokens.clients."""
