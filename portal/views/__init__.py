"""Dashboard and operational views of the portal room."""
