"""Alembic environment of the logs DB."""

from alembic import context

from ppacer.db.migrations import run_migrations
from ppacer.db.schema import LOGS_VERSION_TABLE, logs_metadata

run_migrations(context, logs_metadata, LOGS_VERSION_TABLE)
