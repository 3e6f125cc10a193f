"""Migrations of the logs DB (run by :mod:`ppacer.db.migrate`)."""
