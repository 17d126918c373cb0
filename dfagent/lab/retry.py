"""One way to wait for a lab to reach a state: poll a function until it returns something
truthy, or fail saying what was awaited and what was last seen.

Tests and benches used to hand-write these loops, each with its own deadline arithmetic and
its own (often missing) account of the last value; a timeout then said "timed out" and
nothing about why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from dfagent.lab.errors import LabError

T = TypeVar("T")


class WaitTimeout(LabError, AssertionError):
    """`wait_until` gave up. An AssertionError too, so a test shows it as a failed check."""

    def __init__(self, what: str, timeout: float, last: object):
        self.what = what
        self.last = last
        shown = repr(last)
        if len(shown) > 500:
            shown = shown[:500] + "…"
        super().__init__(f"timed out after {timeout:g} s waiting for {what} (last: {shown})")


def wait_until(
    fn: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "",
    retry_on: tuple[type[BaseException], ...] = (),
    until: Callable[[T], object] = bool,
) -> T:
    """`fn()` until `until(value)` holds (default: the value is truthy); returns the value,
    else raises `WaitTimeout` naming `what` and the last value.

    The default deadline is generous: it only delays a failure, and on a busy shared
    machine one `dfagent linux status` call can take seconds. `fn` is called at least once,
    and once more at the deadline. Exceptions in `retry_on` count as "not yet" (the last one
    is reported); any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = fn()
        except retry_on as exc:
            last = exc
        else:
            if until(value):
                return value
            last = value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(what or getattr(fn, "__name__", repr(fn)), timeout, last)
        time.sleep(min(interval, left))
