"""An executor (any number, on any machine that reaches the scheduler): `python executor.py`."""

import os

from dags import dags

import ppacer
from ppacer.logconfig import configure_logging

configure_logging()
url = os.environ.get("PPACER_URL", "http://127.0.0.1:9321")
executor = ppacer.Executor(url, dags, concurrency=8).start()
try:
    executor.wait()
except KeyboardInterrupt:  # Ctrl-C: stop polling, let the running tasks finish
    executor.stop()
