"""Template tags of the portal room."""
