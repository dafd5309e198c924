"""One small view per protocol endpoint, each citing its RFC."""
