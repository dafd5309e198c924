"""Leaked-secret reports: GitHub secret-scanning partner alerts, verified, acted on and recorded."""
