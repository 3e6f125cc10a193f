"""``GET /healthz``: 200 when the databases answer, the loops run and the event loop ticks.

Otherwise 503 naming the failed check. A standby scheduler answers 200 with
status "standby" and its leader (503 if it would not take over). It needs no
token (orchestrators' probes).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Engine, text
from starlette.responses import JSONResponse, Response

from ppacer.dag.status import SchedulerState
from ppacer.scheduler.core import SchedulerCore
from ppacer.scheduler.dbgate import describe
from ppacer.server.adapter import Call
from ppacer.server.metrics import SchedulerMetrics

__all__ = ["HealthCheck"]

# The loop counts as stuck when the lag ticker has not run for this long, in seconds.
_STUCK_AFTER_S = 10.0
# Longest a health check waits for a database, in seconds.
_DB_CHECK_TIMEOUT_S = 5.0


async def _check_db(engine: Engine) -> str:
    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), _DB_CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"unavailable: no answer within {_DB_CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        return f"unavailable: {describe(exc)}"
    return "ok"


def _standby(scheduler: SchedulerCore, checks: dict[str, Any]) -> Response:
    """A standby is healthy when its database answers and it would take over."""
    leadership = scheduler.leadership
    checks["role"] = "standby"
    checks["leader"] = scheduler.leader_url() or "none known now"
    refusal = leadership.refusal if leadership is not None else None
    if refusal:
        checks["takeover"] = f"refused: {refusal}"
    healthy = checks["db"] == "ok" and checks["eventLoop"] == "ok" and not refusal
    return _answer("standby" if healthy else "unhealthy", checks, healthy)


def _answer(status: str, checks: dict[str, Any], healthy: bool) -> Response:
    """The answer of :class:`ppacer.api.schemas.HealthOut` (written without loading it:
    probes call often, and a scheduler serving executors only never loads the models)."""
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if healthy else 503)


class HealthCheck:
    """The health of one scheduler (its loop's liveness comes from the metrics' ticker)."""

    def __init__(self, scheduler: SchedulerCore, metrics: SchedulerMetrics) -> None:
        self.scheduler = scheduler
        self.metrics = metrics

    async def endpoint(self, _call: Call[None, None, None]) -> Response:
        """``GET /healthz``: every check by name; 503 if one failed."""
        scheduler = self.scheduler
        gate = scheduler.gate
        if gate.is_open:
            checks: dict[str, Any] = {"db": await _check_db(scheduler.engine)}
        else:
            checks = {"db": f"unavailable for {gate.closed_for_s:.1f}s: {gate.reason}"}
        if scheduler.logs_engine is not None:
            checks["logsDb"] = await _check_db(scheduler.logs_engine)
        loops = scheduler.loop_health()
        checks["loops"] = loops
        stalled_s = time.monotonic() - self.metrics.last_tick
        checks["eventLoop"] = (
            "ok" if stalled_s < _STUCK_AFTER_S else f"no tick for {stalled_s:.1f}s"
        )
        checks["eventLoopLagS"] = round(self.metrics.last_lag_s, 6)
        checks["state"] = str(scheduler.state)
        if scheduler.is_standby:
            return _standby(scheduler, checks)
        checks["role"] = "leader"
        healthy = (
            checks["db"] == "ok"
            and checks.get("logsDb", "ok") == "ok"
            and bool(loops)
            and all(v == "ok" for v in loops.values())
            and checks["eventLoop"] == "ok"
            and scheduler.state is SchedulerState.RUNNING
        )
        return _answer("ok" if healthy else "unhealthy", checks, healthy)
