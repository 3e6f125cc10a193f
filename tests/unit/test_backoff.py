"""The one back-off policy: its delays, its cap, its reset and its interruptible wait."""

from __future__ import annotations

import threading
import time

import pytest

from ppacer.backoff import Backoff


def delays(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_s() for _ in range(n)]


def test_exponential_doubles_up_to_the_cap():
    assert delays(Backoff.exponential(first_s=0.05, cap_s=0.5), 6) == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    )


def test_linear_grows_by_one_step_up_to_the_cap():
    assert delays(Backoff.linear(step_s=0.001, cap_s=0.0035), 5) == pytest.approx(
        [0.001, 0.002, 0.003, 0.0035, 0.0035]
    )


def test_reset_starts_again_from_the_first_delay_and_counts_steps_from_zero():
    backoff = Backoff.exponential(first_s=1.0, cap_s=60.0)
    assert backoff.steps == 0
    delays(backoff, 3)
    assert backoff.steps == 3
    backoff.reset()
    assert backoff.steps == 0
    assert backoff.next_s() == 1.0


def test_wait_ends_at_once_when_the_stop_event_is_set():
    backoff = Backoff.exponential(first_s=60.0, cap_s=60.0)
    stop = threading.Event()
    stopped: list[bool] = []
    waiter = threading.Thread(target=lambda: stopped.append(backoff.wait(stop)))
    started = time.monotonic()
    waiter.start()
    stop.set()
    waiter.join(10)
    assert stopped == [True]
    assert time.monotonic() - started < 10


def test_wait_without_a_stop_waits_the_delay_and_says_so():
    backoff = Backoff.exponential(first_s=0.001, cap_s=0.001)
    assert backoff.wait(threading.Event()) is False
    assert backoff.steps == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_s": 2.0, "cap_s": 1.0},
        {"first_s": -1.0, "cap_s": 1.0},
        {"first_s": 0.1, "cap_s": 1.0, "factor": 0.5},
        {"first_s": 0.1, "cap_s": 1.0, "step_s": -0.1},
    ],
)
def test_a_policy_that_would_shrink_or_go_negative_is_refused(kwargs):
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(**kwargs)
