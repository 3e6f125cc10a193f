"""The scheduler alone (API, UI, schedules): `python scheduler.py`; Ctrl-C stops it."""

import os

import uvicorn
from dags import dags

import ppacer
from ppacer.logconfig import configure_logging

configure_logging()  # the scheduler's log lines on stderr (PPACER_LOG_LEVEL, PPACER_LOG_FORMAT)
app = ppacer.Scheduler("scheduler.db", logs_db="logs.db").start(dags)
uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PPACER_PORT", "9321")))
