"""Tests of tokens.protocol."""
