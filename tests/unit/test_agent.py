"""The agent's loop with fakes: one thread owns the datapath; hints, operations, pin batches
and background counts all reach it there."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from dfagent.agent.agent import Agent, AgentOptions
from dfagent.core.nexthops import NextHop
from dfagent.core.pinning import Event, NhRecord


class PipeHints:
    """A hint source a test can poke: readable after poke(), pending() drains it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)

    def poke(self) -> None:
        os.write(self.w, b"!")

    def fileno(self) -> int:
        return self.r

    def pending(self) -> bool:
        got = False
        while True:
            try:
                got = bool(os.read(self.r, 64)) or got
            except BlockingIOError:
                return got

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class FakeDatapath:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, str]] = []  # (what, arg, thread name)
        self.counts = 0
        self.count_gate = threading.Event()
        self.count_gate.set()

    def _note(self, what: str, arg: Any = None) -> None:
        self.calls.append((what, arg, threading.current_thread().name))

    @property
    def records(self) -> Mapping[NextHop, NhRecord]:
        return {}

    def start(self) -> None:
        self._note("start")

    def reconcile(
        self,
        force_count: bool = False,
        pinned: Mapping[int, int] | None = None,
        count: bool = True,
    ) -> list[Event]:
        assert not count, "the agent counts in the background, never inline"
        self._note("reconcile", dict(pinned) if pinned is not None else None)
        return []

    def wants_count(self) -> bool:
        return False

    def count_pins(self) -> dict[int, int]:
        self.count_gate.wait(5)
        self.counts += 1
        return {0x0DFA0001: 7}

    def check_and_repair(self) -> bool:
        self._note("repair")
        return False

    def close(self) -> None:
        self._note("close")


class FakePinner:
    def __init__(self) -> None:
        self.batches: list[tuple[list[Any], str]] = []

    def pin(self, batch: Any) -> None:
        self.batches.append((list(batch), threading.current_thread().name))


@pytest.fixture
def running() -> Iterator[tuple[Agent, FakeDatapath, PipeHints, PipeHints, FakePinner]]:
    dp, rh, nh, pinner = FakeDatapath(), PipeHints(), PipeHints(), FakePinner()
    agent = Agent(dp, rh, nh, AgentOptions(reconcile_interval=3600), pinner=pinner)
    t = threading.Thread(target=agent.run, name="loop")
    t.start()
    try:
        yield agent, dp, rh, nh, pinner
    finally:
        agent.stop()
        t.join(5)
        assert not t.is_alive()
        agent.close()


def wait(pred: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_everything_runs_on_the_loop_thread(running: Any) -> None:
    agent, dp, rh, nh, pinner = running
    wait(lambda: any(c[0] == "reconcile" and c[1] for c in dp.calls))  # the start count
    # an operation from another thread runs on the loop and hands back its result
    assert agent.call(lambda: threading.current_thread().name) == "loop"
    with pytest.raises(ZeroDivisionError):
        agent.call(lambda: 1 / 0)
    # a route hint makes a pass; a datapath hint a repair check (at once)
    before = sum(1 for c in dp.calls if c[0] == "reconcile")
    rh.poke()
    wait(lambda: sum(1 for c in dp.calls if c[0] == "reconcile") > before)
    repairs = sum(1 for c in dp.calls if c[0] == "repair")
    nh.poke()
    wait(lambda: sum(1 for c in dp.calls if c[0] == "repair") > repairs)
    # pin batches from the mirror thread are written by the loop
    agent.pin([("10.0.0.2", "1.1.1.1", 1, 80, "10.0.1.2")])
    wait(lambda: pinner.batches)
    assert pinner.batches[0][1] == "loop"
    assert {c[2] for c in dp.calls} == {"loop"}


def test_a_slow_count_never_blocks_the_loop(running: Any) -> None:
    agent, dp, rh, _nh, _pinner = running
    wait(lambda: dp.counts >= 1)
    dp.count_gate.clear()  # the next count hangs (a million-entry dump)
    rh.poke()
    agent.call(lambda: agent._count_in_background())
    t0 = time.monotonic()
    assert agent.call(lambda: "still answering", timeout=2) == "still answering"
    assert time.monotonic() - t0 < 1.0
    dp.count_gate.set()
    wait(lambda: dp.counts >= 2)
    wait(lambda: [c for c in dp.calls if c[0] == "reconcile" and c[1]].__len__() >= 2)


def test_stop_ends_the_loop_and_pending_operations_still_run() -> None:
    dp = FakeDatapath()
    agent = Agent(dp, options=AgentOptions(reconcile_interval=3600))
    fut = agent.submit(lambda: 42)
    agent.stop()
    agent.run()  # returns at once: stopped, but queued work was done
    assert fut.result(1) == 42
    agent.close()


def test_ready_line_says_where_the_start_went(caplog: pytest.LogCaptureFixture) -> None:
    dp = FakeDatapath()
    agent = Agent(dp, options=AgentOptions(reconcile_interval=3600))
    agent.stop()
    with caplog.at_level("INFO", logger="dfagent.agent"):
        agent.run()
    agent.close()
    ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ready ")]
    assert len(ready) == 1, caplog.text
    fields = dict(kv.split("=") for kv in ready[0].split()[1:])
    # this test process started before the pass: its age exceeds the pass
    assert 0 <= float(fields["first_pass_ms"]) < float(fields["since_process_start_ms"])


def test_a_stream_of_operations_does_not_starve_route_changes(running: Any) -> None:
    """Pin batches keep arriving (each op re-queues another, as a busy mirror path does): a
    route change still gets its pass within a few loop rounds, not after the stream ends."""
    agent, dp, rh, _nh, _pinner = running
    wait(lambda: dp.counts >= 1)
    stop = threading.Event()
    ran = [0]

    def busy() -> None:
        ran[0] += 1
        time.sleep(0.005)
        if not stop.is_set():
            agent.post(busy)

    agent.post(busy)
    try:
        wait(lambda: ran[0] > 10)
        before = len([c for c in dp.calls if c[0] == "reconcile"])
        rh.poke()
        wait(lambda: len([c for c in dp.calls if c[0] == "reconcile"]) > before, timeout=3)
    finally:
        stop.set()
