"""API keys: the standing credential kind (models, services, views, REST API, admin)."""
