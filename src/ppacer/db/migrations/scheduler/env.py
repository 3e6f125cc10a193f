"""Alembic environment of the scheduler DB."""

from alembic import context

from ppacer.db.migrations import run_migrations
from ppacer.db.schema import SCHEDULER_VERSION_TABLE, metadata

run_migrations(context, metadata, SCHEDULER_VERSION_TABLE)
