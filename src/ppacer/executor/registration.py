"""Registering with the scheduler: what this executor serves and has.

On start, and again after every outage (a restarted scheduler forgets who
registered), the executor announces its queues, labels and the code version
of every task it has (``POST /executor/register``); the scheduler then hands
it only attempts of those queues and versions, and answers with what of its
DAGs this executor lacks or has other code for: one log line says so. A
refusal waiting will not fix (a wrong token, an older scheduler) is an
:class:`ExecutorConfigError` (:mod:`ppacer.executor.config_errors`; both its
names are importable from here too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ppacer.api.answers import Terms
from ppacer.api.client import Client
from ppacer.dag.dag import Registry
from ppacer.errors import NotFoundError, PpacerError
from ppacer.executor.config_errors import ExecutorConfigError, config_problem

__all__ = [
    "ExecutorConfigError",
    "Registrar",
    "config_problem",
    "parse_labels",
    "parse_queues",
    "registry_versions",
]

log = logging.getLogger("ppacer.executor")

#: Task ids named in the one registration line, at most (then "and N more").
_SHOWN = 5


def registry_versions(registry: Registry) -> dict[str, dict[str, str]]:
    """The code version of every task of ``registry``: DAG id -> task id -> version."""
    return {
        dag_id: {task_id: info.code_version for task_id, info in registry[dag_id].tasks.items()}
        for dag_id in registry
    }


def parse_queues(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """Queue names from ``"gpu,default"`` (or several such), in order, without repeats."""
    parts = [text] if isinstance(text, str) else list(text)
    names = [q.strip() for part in parts for q in part.split(",") if q.strip()]
    if not names:
        raise ValueError("queues: name at least one queue, e.g. default")
    return list(dict.fromkeys(names))


def parse_labels(text: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """Labels from ``"zone=eu,gpu=a100"`` (or several ``k=v`` strings)."""
    parts = [text] if isinstance(text, str) else list(text)
    labels: dict[str, str] = {}
    for item in (p.strip() for part in parts for p in part.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"labels: {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


@dataclass(slots=True)
class Registrar:
    """Registers ``name`` with what it serves; remembers whether the scheduler takes it."""

    client: Client
    name: str
    registry: Registry
    queues: list[str] = field(default_factory=lambda: ["default"])
    labels: dict[str, str] = field(default_factory=dict)
    #: Older code versions still held, for runs started before a hot reload.
    retained: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: The scheduler's last answer (None: not registered, or it takes no registrations).
    terms: Terms | None = None
    #: False once the scheduler said it has no registration endpoint (older, or the original).
    is_supported: bool = True

    def register(self) -> Terms | None:
        """Register (or again); None when the scheduler takes no registrations.

        Raises :class:`ExecutorConfigError` for a problem waiting will not fix;
        :class:`~ppacer.errors.SchedulerUnavailableError` while it cannot be reached.
        """
        try:
            terms = self.client.register_executor(
                self.name,
                queues=self.queues,
                versions=registry_versions(self.registry),
                labels=self.labels,
                retained=self.retained,
            )
        except NotFoundError:
            # An older scheduler, or the original - or not a scheduler at all: /state tells.
            self._check_is_scheduler()
            if self.is_supported:
                log.info(
                    "the scheduler at %s takes no registrations (an older or the original "
                    "scheduler): it may hand this executor tasks of any version",
                    self.client.url,
                )
            self.is_supported = False
            self.terms = None
            return None
        except PpacerError as exc:
            problem = config_problem(exc, self.client.url, registering=True)
            if problem is not None:
                raise ExecutorConfigError(problem) from exc
            raise
        self.is_supported = True
        self.terms = terms
        log.info("%s", self.describe(terms))
        return terms

    def describe(self, terms: Terms) -> str:
        """The one line a registration is logged as."""
        line = (
            f"executor {self.name} registered with the scheduler at {self.client.url} "
            f"(ppacer {terms.schedulerVersion}, protocol {terms.protocolVersion}); "
            f"queues {','.join(self.queues)}"
        )
        if terms.missingTasks:
            line += f"; it lacks {_some(terms.missingTasks)}"
        if terms.mismatchedTasks:
            line += f"; other code here for {_some(terms.mismatchedTasks)} (not run here)"
        return line

    def _check_is_scheduler(self) -> None:
        try:
            self.client.get_state()
        except PpacerError as exc:
            problem = config_problem(exc, self.client.url)
            if problem is None and isinstance(exc, NotFoundError):
                problem = (
                    f"{self.client.url} has no ppacer API (GET /state: {exc}): check --url / "
                    "PPACER_URL"
                )
            if problem is not None:
                raise ExecutorConfigError(problem) from exc
            raise


def _some(tasks: list[str]) -> str:
    """``a/b, c/d and 3 more`` (task count first)."""
    shown = ", ".join(tasks[:_SHOWN])
    more = f" and {len(tasks) - _SHOWN} more" if len(tasks) > _SHOWN else ""
    return f"{len(tasks)} task(s): {shown}{more}"
