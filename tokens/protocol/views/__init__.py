"""One small view per protocol endpoint, plus the dashboard pages."""
