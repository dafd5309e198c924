"""Plumbing: caches, rate limits, faults, request context, logs, metrics, secrets at rest, outbound HTTP."""
