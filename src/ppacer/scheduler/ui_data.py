"""Data for the UI endpoints (placeholder, filled below)."""
