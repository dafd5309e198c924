"""M2M applications, their client secrets and public keys: services, selectors, pages, REST API, admin."""
