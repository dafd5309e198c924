"""Tests of tokens.federation."""
