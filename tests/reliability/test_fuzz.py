"""Fuzzed and hostile requests on every route of the API: no 5xx, nothing written, no run disturbed.

A real scheduler and executor (:class:`~ppacer.local.LocalRunner`) on loopback
with SQLite files. Requests are generated per route of
:data:`ppacer.api.routes.ROUTES` by schemathesis (valid and invalid cases from
the live OpenAPI document), then, half of the time, mutated by hypothesis: a
lone surrogate (``"\\ud800"``, a legal JSON escape), NUL characters, non-finite
numbers, nesting past the limit, as a value or a key anywhere in a body, or in a
path or query parameter. Besides, every route gets the hostile requests by hand:
100,000 brackets, a 10 MB body (declared, and chunked), invalid UTF-8, raw NUL
bytes. For every answer:

- it is not a 5xx;
- a refused request (4xx) changed nothing: a checksum of every row of every table
  of both databases (read with ``sqlite3``) is the same after it as before (after
  an accepted request the test waits until every run has finished and takes the
  checksum again);
- and normal runs triggered before, during and after the hostile requests end
  SUCCESS, as does every run an accepted fuzzed trigger created.

The figures (requests sent, 5xx answers) are printed at the end of the module.
``PPACER_RELIABILITY_LONG=1`` generates 250 requests per route instead of 15.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

import ppacer
from ppacer.api.routes import ROUTES, Route
from ppacer.local import LocalRunner
from ppacer.scheduler.config import Config
from tests.conftest import wait_for
from tests.reliability.faults import LONG

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900 if LONG else 120)]

#: Generated requests per route.
EXAMPLES = 250 if LONG else 15
#: Steady runs triggered while hostile requests are sent (the poisoning check).
STEADY_RUNS = 3
HUGE = 10 * 1024 * 1024
DEEP = 100_000


@ppacer.task
def echo(ctx: ppacer.TaskContext) -> dict[str, Any]:
    """Returns its parameters: what a fuzzed trigger gave must be readable and sendable."""
    return {"params": dict(ctx.params)}


@ppacer.task
def step(ctx: ppacer.TaskContext) -> None:
    ctx.logger.info("step of %s", ctx.exec_ts)


def _registry() -> ppacer.Registry:
    steady = ppacer.Node(step)
    steady.next(ppacer.Node(echo))
    return ppacer.Registry(
        [
            ppacer.Dag("steady", root=steady).done(),
            ppacer.Dag("fuzz", root=ppacer.Node(echo)).done(),
        ]
    )


def checksum(*paths: Path) -> str:
    """A digest of every row of every table of these SQLite files (order-independent)."""
    digest = hashlib.sha256()
    for path in paths:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            for table in tables:
                rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
                digest.update(f"{path.name}:{table}:{len(rows)}\n".encode())
                for row in rows:
                    digest.update(row.encode("utf-8", "surrogatepass") + b"\n")
        finally:
            conn.close()
    return digest.hexdigest()


@dataclass
class Fuzzer:
    """Sends requests, checks every answer, keeps the figures."""

    runner: LocalRunner
    db: Path
    logs: Path
    sent: int = 0
    server_errors: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    accepted: int = 0
    baseline: str = ""

    def __post_init__(self) -> None:
        self.http = httpx2.Client(base_url=self.runner.url, timeout=60.0)
        # SQLite's data_version moves when another connection commits: while it holds
        # still nothing was written, and the checksum need not be read again.
        self._watch = [sqlite3.connect(p, isolation_level=None) for p in (self.db, self.logs)]
        self.versions = self._versions()
        self.settle()

    def _versions(self) -> tuple[int, ...]:
        return tuple(conn.execute("PRAGMA data_version").fetchone()[0] for conn in self._watch)

    def unfinished(self) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            (n,) = conn.execute(
                "SELECT count(*) FROM dagruns WHERE Status NOT IN ('SUCCESS', 'FAILED')"
            ).fetchone()
        finally:
            conn.close()
        return int(n)

    def settle(self) -> None:
        """Wait until every run has finished and the databases hold still; take the checksum."""
        wait_for(lambda: self.unfinished() == 0, 60, "every run to finish")
        previous = [checksum(self.db, self.logs)]

        def still() -> bool:
            now = checksum(self.db, self.logs)
            same = now == previous[0]
            previous[0] = now
            return same

        wait_for(still, 30, "the databases to hold still")
        self.baseline = previous[0]
        self.versions = self._versions()

    def send(
        self,
        method: str,
        url: str,
        *,
        content: Any = None,
        headers: dict[str, str] | None = None,
        check_db: bool = True,
    ) -> httpx2.Response:
        """Send one request; note a 5xx, or a refused request that changed the databases."""
        answer = self.http.request(method, url, content=content, headers=headers)
        self.sent += 1
        what = f"{method} {url[:200]} {_short(content)} -> {answer.status_code} {answer.text[:300]}"
        if answer.status_code >= 500:
            self.server_errors.append(what)
        elif not check_db:
            pass
        elif answer.status_code >= 400:
            versions = self._versions()
            if versions != self.versions:  # something was committed: was anything changed?
                self.versions = versions
                if checksum(self.db, self.logs) != self.baseline:
                    self.changed.append(what)
                    self.settle()
        else:
            self.accepted += 1
            if self.unfinished() or self._versions() != self.versions:
                self.settle()  # it wrote something (or started a run): a new baseline
        return answer

    def check_unchanged(self) -> None:
        """The databases' checksum is the one taken after the last accepted request."""
        assert checksum(self.db, self.logs) == self.baseline, "changed by a refused request"

    def close(self) -> None:
        self.http.close()
        for conn in self._watch:
            conn.close()


def _short(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, bytes):
        return repr(content[:200]) + (f"... ({len(content)} bytes)" if len(content) > 200 else "")
    return "<stream>"


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    db, logs = tmp / "scheduler.db", tmp / "logs.db"
    runner = LocalRunner(
        _registry(),
        str(db),
        str(logs),
        port=0,
        config=Config(max_pop_wait_s=0.1, lease_timeout_s=5.0),
        stop_timeout_s=10.0,
    ).start()
    runner.executor.poll_wait_s = 0.1  # type: ignore[union-attr]
    found = Fuzzer(runner, db, logs)
    try:
        yield found
    finally:
        found.close()
        runner.stop()
    print(
        f"\nfuzz: {found.sent} requests on {len(ROUTES)} routes, {found.accepted} accepted, "
        f"{len(found.server_errors)} answered 5xx, {len(found.changed)} refused ones changed "
        "the database"
    )


@pytest.fixture(scope="module")
def live_schema(fuzzer: Fuzzer) -> Any:
    schema = schemathesis.openapi.from_url(f"{fuzzer.runner.url}/openapi.json")
    schema.config.update(base_url=fuzzer.runner.url)
    return schema


# ---------------------------------------------------------------- hostile values

#: Text that is not text (lone surrogates), NULs, and other characters that trip encoders.
BAD_TEXT = st.sampled_from(
    ["\ud800", "a\udfffb", "\udc00\ud800", "\x00", "nul\x00nul", "\u2028\u2029", "\ufffe", "ż😀"]
)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


BAD_VALUE = st.one_of(
    BAD_TEXT,
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.integers(min_value=65, max_value=300).map(_nested),
    st.lists(BAD_TEXT, min_size=1, max_size=3),
    st.dictionaries(BAD_TEXT, BAD_TEXT, min_size=1, max_size=2),
)


@st.composite
def _mutated(draw: st.DrawFn, body: Any, route: Route) -> Any:
    """``body`` with a hostile value (or key) put somewhere in it."""
    if not isinstance(body, dict):
        body = {}
    body = copy.deepcopy(body)
    if route.name in ("trigger_dag_run", "restart_dag_run") and draw(st.booleans()):
        body["dagId"] = "fuzz"  # past the 404: into parameter and state checks
    target = body
    while True:
        inner = [k for k, v in target.items() if isinstance(v, dict)]
        if not inner or draw(st.booleans()):
            break
        target = target[draw(st.sampled_from(sorted(inner)))]
    keys = st.sampled_from(sorted(target) or ["params"])
    key = draw(st.one_of(keys, st.just("params"), BAD_TEXT))
    target[key] = draw(BAD_VALUE)
    return body


def _encode(body: Any) -> bytes:
    """JSON as a client may send it: lone surrogates as \\u escapes, NaN as NaN."""
    if isinstance(body, bytes):  # a negative case's raw body
        return body
    return json.dumps(body, allow_nan=True, default=_raw).encode()


def _raw(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"cannot send {type(value).__name__}")


def _url_text(value: Any) -> str:
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def _url(route: Route, path: dict[str, Any], query: dict[str, Any]) -> str:
    url = route.path
    for name, value in path.items():
        url = url.replace("{" + name + "}", _url_text(value))
    if query:
        url += "?" + "&".join(f"{_url_text(k)}={_url_text(v)}" for k, v in query.items())
    return url


def _params_of(route: Route) -> list[str]:
    return list(route.params.model_fields) if route.params else []


# ---------------------------------------------------------------- the tests

_ROUTES = sorted(ROUTES.values(), key=lambda r: (r.path, r.method))


@pytest.mark.parametrize("route", _ROUTES, ids=[f"{r.method} {r.path}" for r in _ROUTES])
def test_fuzzed_requests_get_no_5xx_and_refused_ones_change_nothing(
    fuzzer: Fuzzer, live_schema: Any, route: Route
) -> None:
    operation = live_schema[route.path][route.method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @hypothesis.given(case=cases, data=st.data())
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    def fuzz(case: Any, data: st.DataObject) -> None:
        path = dict(case.path_parameters or {})
        query = dict(case.query or {})
        body = case.body if route.body is not None else None
        if data.draw(st.booleans(), "mutate"):
            if route.body is not None:
                body = data.draw(_mutated(body, route), "body")
            else:
                names = _params_of(route) + ["wait_s", "limit", "n"] * (not route.params)
                name = data.draw(st.sampled_from(names or ["x"]), "name")
                (path if name in path else query)[name] = data.draw(BAD_TEXT, "value")
        content = None
        if route.body is not None and not isinstance(body, NotSet):
            content = _encode(body)
        fuzzer.send(route.method, _url(route, path, query), content=content)

    fuzz()
    assert fuzzer.server_errors == [], fuzzer.server_errors[:5]
    assert fuzzer.changed == [], fuzzer.changed[:5]
    fuzzer.check_unchanged()


def _hostile_bodies() -> list[tuple[str, Any]]:
    def chunked() -> Iterator[bytes]:
        piece = b"[" * 65536
        for _ in range(HUGE // len(piece)):
            yield piece

    return [
        ("100,000 brackets", b"[" * DEEP + b"]" * DEEP),
        ("100,000 objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
        ("unclosed brackets", b"[" * DEEP),
        ("10 MB declared", b'{"dagId": "fuzz", "params": {"k": "' + b"x" * HUGE + b'"}}'),
        ("10 MB chunked", chunked()),
        ("a lone surrogate", b'{"dagId": "fuzz", "params": {"k": "\\ud800"}}'),
        ("a lone surrogate key", b'{"dagId": "fuzz", "params": {"\\udfff": 1}}'),
        ("a lone surrogate dagId", b'{"dagId": "\\ud800"}'),
        ("raw NUL bytes", b'{"dagId": "fu\x00zz"}\x00'),
        ("invalid UTF-8", b'{"dagId": "\xff\xfe"}'),
        ("NaN", b'{"dagId": "fuzz", "params": {"k": NaN}}'),
        ("1e400", b'{"dagId": "fuzz", "params": {"k": 1e400}}'),
        ("not an object", b'"fuzz"'),
        ("empty", b""),
    ]


def _hostile_urls(route: Route) -> list[str]:
    """The route's path with each parameter, and then each query, made hostile."""
    names = _params_of(route)
    urls = []
    for bad in ("%ED%A0%80", "%00", "%FF", "x" * 8000):
        path = route.path
        for name in names:
            path = path.replace("{" + name + "}", bad)
        urls.append(f"{path}?wait_s={bad}&limit={bad}&n={bad}&dagId={bad}")
    return urls


@pytest.mark.parametrize("route", _ROUTES, ids=[f"{r.method} {r.path}" for r in _ROUTES])
def test_hostile_requests_are_refused_and_change_nothing(fuzzer: Fuzzer, route: Route) -> None:
    """Deep nesting, huge bodies, surrogates, NULs, bad UTF-8: 4xx, the databases untouched."""
    answers = {}
    url = _url(route, {name: "1" for name in _params_of(route)}, {})
    for name, content in _hostile_bodies():
        answers[name] = fuzzer.send(route.method, url, content=content).status_code
    for hostile in _hostile_urls(route):
        answers[hostile[:40]] = fuzzer.send(route.method, hostile).status_code
    assert fuzzer.server_errors == [], fuzzer.server_errors[:5]
    assert fuzzer.changed == [], fuzzer.changed[:5]
    fuzzer.check_unchanged()
    if route.body is not None:  # each refused, and for what it is
        for name in ("100,000 brackets", "100,000 objects", "a lone surrogate", "raw NUL bytes"):
            assert answers[name] == 400, (name, answers[name])
        for name in ("10 MB declared", "10 MB chunked"):
            assert answers[name] == 413, (name, answers[name])


def test_normal_runs_around_and_during_hostile_requests_end_success(fuzzer: Fuzzer) -> None:
    """The poisoning check: bad requests among running runs disturb none of them."""
    client = fuzzer.runner.client
    run_ids = [client.trigger_dag_run("steady", {"n": 0})["runId"]]
    post_routes = [r for r in _ROUTES if r.body is not None]
    for i in range(STEADY_RUNS):
        for route in post_routes:
            for _name, content in _hostile_bodies()[:3] + _hostile_bodies()[5:9]:
                fuzzer.send(route.method, route.path, content=content, check_db=False)
        run_ids.append(client.trigger_dag_run("steady", {"n": i + 1})["runId"])
    fuzzer.settle()
    assert fuzzer.server_errors == [], fuzzer.server_errors[:5]
    for run_id in run_ids:
        run = client.get_dag_run(run_id)
        assert run["status"] == "SUCCESS", run
    # Every run ever made here, by the fuzz too, finished SUCCESS and reads back.
    conn = sqlite3.connect(f"file:{fuzzer.db}?mode=ro", uri=True)
    try:
        runs = list(conn.execute("SELECT RunId, DagId, Status FROM dagruns ORDER BY RunId"))
    finally:
        conn.close()
    assert [r for r in runs if r[2] != "SUCCESS"] == []
    for run_id, _dag_id, _status in runs:
        for page in (f"/dag/run/details/{run_id}", f"/ui/dagrun/{run_id}", f"/ui/runs/{run_id}"):
            assert fuzzer.send("GET", page, check_db=False).status_code == 200, page
    assert fuzzer.send("GET", "/dag/run/list?limit=1000", check_db=False).status_code == 200


NUL = "x\x00y"


@pytest.mark.postgres
def test_postgres_nul_characters_in_stored_text_are_no_5xx(pg_url: str) -> None:
    """NUL is valid text, but PostgreSQL's text cannot hold it: refused (4xx) or stored, no 5xx."""
    runner = LocalRunner(
        _registry(), pg_url, pg_url, port=0, config=Config(max_pop_wait_s=0.1), stop_timeout_s=10.0
    ).start()
    runner.executor.poll_wait_s = 0.1  # type: ignore[union-attr]
    try:
        done = runner.client.trigger_dag_run("steady")
        wait_for(lambda: runner.client.get_dag_run(done["runId"])["status"] == "SUCCESS", 30)
        run = {"dagId": "steady", "execTs": done["execTs"]}
        bodies = [
            ("/dag/run/trigger", {"dagId": "fuzz", "params": {"k": NUL}}),
            ("/dag/run/trigger", {"dagId": "fuzz", "params": {NUL: 1}}),
            ("/dag/run/trigger", {"dagId": "fuzz", "actor": NUL}),
            ("/dag/pause", {"dagId": "fuzz", "actor": NUL}),
            ("/dag/unpause", {"dagId": "fuzz", "actor": NUL}),
            ("/executor/register", {"executor": NUL, "labels": {NUL: NUL}}),
            ("/executor/heartbeat", {"executor": NUL}),
            ("/dag/run/task/clear", {**run, "taskId": "step", "actor": NUL}),
            ("/dag/run/task/mark", {**run, "taskId": "step", "status": "SUCCESS", "actor": NUL}),
        ]
        answers = []
        with httpx2.Client(base_url=runner.url, timeout=30.0) as http:
            for path, body in bodies:
                answer = http.post(path, content=json.dumps(body).encode())
                answers.append((path, json.dumps(body), answer.status_code, answer.text[:200]))
        failed = [f"{path} {body} -> {code}" for path, body, code, _ in answers if code >= 500]
        assert failed == [], "\n".join(failed)
        last = runner.client.trigger_dag_run("steady")
        wait_for(lambda: runner.client.get_dag_run(last["runId"])["status"] == "SUCCESS", 30)
    finally:
        runner.stop()
