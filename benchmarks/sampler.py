"""A wall-clock stack sampler in the process itself, for where py-spy is not installed.

``procs.py`` starts it when ``PPACER_BENCH_SAMPLE=DIR`` is set: a daemon thread
takes every thread's stack (``sys._current_frames``) every ``1/PPACER_BENCH_SAMPLE_HZ``
seconds (default 1,000 Hz) and counts them; SIGUSR1 (or the process's exit)
writes them to ``DIR/<role>-<pid>.txt`` in py-spy's raw format ("thread;frame;...
count", frames ``function (file:line)``, outermost first), which
``profile_summary.py`` reads. Unlike py-spy (GIL holder only) every thread is
sampled, waiting or not: ``profile_summary.py --busy`` drops the stacks of threads
waiting (in ``select``, a lock, a queue, a socket read), so what is left is
where the threads ran.

Its cost: one sample of a few threads is ~20-40 µs of Python holding the GIL,
2-4 % of a core at 1 kHz; the GIL's switch interval is lowered to half the sampling
period so that threads running Python are sampled fairly (without that, samples
land mostly where a thread releases the GIL: C calls, I/O). Still a sampler in
the process: time in C code that keeps the GIL is counted on its Python caller.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType


def _stack(frame: FrameType | None) -> list[str]:
    frames = []
    while frame is not None:
        code = frame.f_code
        frames.append(f"{code.co_name} ({code.co_filename}:{frame.f_lineno})")
        frame = frame.f_back
    frames.reverse()
    return frames


class Sampler:
    """Samples every thread's stack at ``hz`` until the process ends."""

    def __init__(self, out: Path, hz: float) -> None:
        self.out = out
        self.interval = 1.0 / hz
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        # A thread running Python holds the GIL up to the switch interval (5 ms): shorter,
        # or the samples would land mostly where threads release it (C calls, I/O).
        sys.setswitchinterval(min(sys.getswitchinterval(), self.interval / 2))
        self.thread.start()
        signal.signal(signal.SIGUSR1, lambda *_: self.dump())
        atexit.register(self.dump)

    def _run(self) -> None:
        me = threading.get_ident()
        names: dict[int, str] = {}
        while True:
            time.sleep(self.interval)
            frames = sys._current_frames()
            if len(names) != len(frames):
                names = {t.ident or 0: t.name for t in threading.enumerate()}
            with self.lock:
                for ident, frame in frames.items():
                    if ident == me:
                        continue
                    name = names.get(ident, str(ident))
                    self.counts[";".join([f"thread ({name})", *_stack(frame)])] += 1

    def dump(self) -> None:
        with self.lock:
            lines = [f"{stack} {n}" for stack, n in self.counts.items()]
        self.out.write_text("\n".join(lines) + "\n")


def profile_from_env(role: str) -> None:
    """With ``PPACER_BENCH_CPROFILE=DIR``: cProfile the main thread (the scheduler's event
    loop in ``procs.py scheduler``); SIGUSR1 writes ``DIR/<role>-<pid>.prof`` (pstats)."""
    where = os.environ.get("PPACER_BENCH_CPROFILE")
    if not where:
        return
    import cProfile

    out = Path(where) / f"{role}-{os.getpid()}.prof"
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()

    def dump(*_: object) -> None:
        profile.disable()
        profile.dump_stats(str(out))
        profile.enable()

    signal.signal(signal.SIGUSR1, dump)
    profile.enable()


def start_from_env(role: str) -> None:
    """Start sampling if ``PPACER_BENCH_SAMPLE`` names a directory."""
    where = os.environ.get("PPACER_BENCH_SAMPLE")
    if not where:
        return
    hz = float(os.environ.get("PPACER_BENCH_SAMPLE_HZ", "1000"))
    out = Path(where) / f"{role}-{os.getpid()}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    Sampler(out, hz).start()
