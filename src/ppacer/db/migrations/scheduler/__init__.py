"""Migrations of the scheduler DB (run by :mod:`ppacer.db.migrate`)."""
