"""Signed lifecycle webhooks: endpoints, the delivery outbox, signing and the sender."""
