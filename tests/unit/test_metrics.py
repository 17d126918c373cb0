"""The one metrics object: what each part feeds, how Prometheus sees it (rendered through a
real prometheus-client registry and parsed back with its parser), the HTTP endpoint, SIGHUP
reload of the config."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dfagent.agent.agent import Agent, AgentOptions
from dfagent.agent.metrics import ErrorCounter, Histogram, Metrics, mirror_outcome, serve_metrics
from dfagent.agent.mirror import MirrorFeed
from dfagent.agent.reload import Reloader, changed_keys, restart_needed
from dfagent.config import load, parse
from dfagent.core.egress import EgressResolver
from dfagent.core.model import NexthopInfo
from dfagent.core.ports import PinStats
from tests.unit.test_agent import FakeDatapath, wait
from tests.unit.test_mirror_receiver import rx_with, syn


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as Prometheus would store it: (name, sorted labels) → value."""
    text = generate_latest(m.registry()).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float:
    return scrape(m)[(name, tuple(sorted(labels.items())))]


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics(backend="eos", mode="map")
    a.passes += 3
    assert value(a, "dfagent_reconcile_passes_total") == 3
    assert value(b, "dfagent_reconcile_passes_total") == 0
    info = value(b, "dfagent_info", backend="eos", mode="map", version=_version())
    assert info == 1


def _version() -> str:
    from dfagent import __version__

    return __version__


def test_mirror_outcomes_and_reasons() -> None:
    assert mirror_outcome("syn") == ("syn", "")
    assert mirror_outcome("synack") == ("synack", "decoded")
    assert mirror_outcome("synack:pinned") == ("synack", "pinned")
    assert mirror_outcome("synack:seen") == ("synack", "seen")
    assert mirror_outcome("skip:not-syn") == ("skipped", "not-syn")
    assert mirror_outcome("drop:not-allowed") == ("dropped", "not-allowed")
    assert mirror_outcome("error:gre: truncated") == ("error", "gre: truncated")
    assert mirror_outcome("socket-errors") == ("error", "socket")
    assert mirror_outcome("packets") is None and mirror_outcome("socket-error:EPERM") is None


def test_the_receiver_and_the_egress_count_into_the_metrics() -> None:
    m = Metrics(mode="map")
    packets = [syn(sport=i) for i in range(6)] + [syn(mirror="6.6.6.6")]
    rx = rx_with(packets, queue_size=4, counters=m.mirror)
    rx.enqueue(rx.drain())  # 6 SYNs for a queue of 4: 2 dropped
    egress = EgressResolver({}, counters=m.mirror)  # no sessions: unknown
    assert egress.pin_items(rx.poll_batch(10)) == []
    s = scrape(m)
    assert s[("dfagent_mirror_received_packets_total", ())] == 7
    assert s[("dfagent_mirror_packets_total", (("outcome", "syn"), ("reason", "")))] == 6
    dropped = {
        dict(k[1])["reason"]: v
        for k, v in s.items()
        if k[0] == "dfagent_mirror_packets_total" and dict(k[1])["outcome"] == "dropped"
    }
    assert dropped == {"not-allowed": 1, "queue-full": 2, "unknown-session": 4}
    assert egress.unknown == 4  # the resolver reads its figures from the same dict


def test_pins_latency_passes_and_repairs_from_the_agent() -> None:
    class Pinner:
        def pin(self, batch: Any) -> PinStats:
            items = list(batch)
            return PinStats(pinned=len(items) - 1, replaced=1, unknown_nexthop=1, batches=1)

    class RepairingDatapath(FakeDatapath):
        def check_and_repair(self) -> bool:
            return True  # someone deleted the table before every check

    m = Metrics(mode="map")
    agent = Agent(RepairingDatapath(), options=AgentOptions(3600), pinner=Pinner(), metrics=m)
    t = threading.Thread(target=agent.run, name="loop")
    t.start()
    try:
        now = time.monotonic()
        # read 0.3 s ago (queued behind a busy loop, say): counted from the read
        agent.pin([("10.0.0.2", "1.1.1.1", p, 80, "s1") for p in range(4)], [now - 0.3] * 4)
        wait(lambda: m.pin_batches == 1)
        agent.call(agent.resync)
    finally:
        agent.stop()
        t.join(5)
        agent.close()
    s = scrape(m)
    pins = {dict(k[1])["result"]: v for k, v in s.items() if k[0] == "dfagent_pins_total"}
    assert pins == {"pinned": 2, "replaced": 1, "unknown_nexthop": 1, "failed": 0}
    bucket = "dfagent_syn_to_pin_seconds_bucket"
    assert s[(bucket, (("le", "0.25"),))] == 0
    assert s[(bucket, (("le", "0.5"),))] == 4
    assert s[("dfagent_syn_to_pin_seconds_count", ())] == 4
    assert 1.2 <= s[("dfagent_syn_to_pin_seconds_sum", ())] < 2.0
    # the first pass and the resync (each followed by one with its background count)
    assert s[("dfagent_reconcile_passes_total", ())] >= 2
    assert s[("dfagent_repairs_total", ())] == 2


def test_histogram_buckets_are_le() -> None:
    h = Histogram((0.001, 0.01))
    for v in (0.001, 0.002, 0.5):
        h.observe(v)
    assert h.cumulative() == [("0.001", 1.0), ("0.01", 2.0), ("+Inf", 3.0)]
    assert h.count == 3


def test_nexthop_states_and_pinned_flows() -> None:
    m = Metrics()
    m.set_nexthops(
        [
            NexthopInfo("s1", "10.2.1.2", "eth2", 4, "draining", 7, 0x0DFA0001, 1),
            NexthopInfo("s2", "10.2.2.2", "eth3", 4, "active", None, 0x0DFA0002, 2),
        ]
    )
    s = scrape(m)
    assert s[("dfagent_pinned_flows", (("address", "10.2.1.2"), ("nexthop", "s1")))] == 7
    assert not any(k[0] == "dfagent_pinned_flows" and ("nexthop", "s2") in k[1] for k in s)
    state = "dfagent_nexthop_state"
    assert s[(state, (("address", "10.2.1.2"), ("nexthop", "s1"), ("state", "draining")))] == 1
    assert s[(state, (("address", "10.2.1.2"), ("nexthop", "s1"), ("state", "active")))] == 0
    assert s[("dfagent_nexthops", (("state", "active"),))] == 1
    assert s[("dfagent_nexthops", (("state", "dead"),))] == 0


def test_queue_depth_and_drops_are_read_at_scrape_time() -> None:
    m = Metrics()
    depth = [3]
    m.queue_depth["mirror"] = lambda: depth[0]
    m.queue_drops["mirror"] = lambda: 9
    assert value(m, "dfagent_queue_depth", queue="mirror") == 3
    depth[0] = 0
    assert value(m, "dfagent_queue_depth", queue="mirror") == 0
    assert value(m, "dfagent_queue_drops_total", queue="mirror") == 9


def test_every_failed_event_logged_is_a_backend_error() -> None:
    m = Metrics()
    handler = ErrorCounter(m)
    lg = logging.getLogger("dfagent.test-metrics")
    lg.addHandler(handler)
    try:
        lg.error("%s %s", "route-failed", "table=5 error=EEXIST")
        lg.error("route-failed table=6")
        lg.warning("count-failed error=Timeout")
        lg.warning("vip-unrouted vip=1.1.1.1/32")  # not a failure
        lg.info("nft-failed")  # below WARNING: never
    finally:
        lg.removeHandler(handler)
    s = scrape(m)
    errors = {dict(k[1])["op"]: v for k, v in s.items() if k[0] == "dfagent_backend_errors_total"}
    assert errors == {"route-failed": 2, "count-failed": 1}


def test_the_http_endpoint_serves_the_registry_and_refuses_a_taken_port() -> None:
    m = Metrics()
    m.repairs = 5
    server = serve_metrics(m, "127.0.0.1:0")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read()
        assert b"dfagent_repairs_total 5.0" in body
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError):
                serve_metrics(Metrics(), f"127.0.0.1:{taken.getsockname()[1]}")
    finally:
        server.close()


# ── the mirror feed: latency from the receiver's read ──────────────────────────────────
class FakeReceiver:
    def __init__(self) -> None:
        self.chunks: list[tuple[float, list[Any]]] = []
        self.counters: dict[str, int] = {}

    def poll_stamped(self, max_events: int, timeout: float) -> list[tuple[float, list[Any]]]:
        out, self.chunks = self.chunks, []
        if not out:
            time.sleep(timeout)
        return out

    def qsize(self) -> int:
        return sum(len(e) for _, e in self.chunks)


def test_the_feed_hands_each_pin_its_read_time() -> None:
    class Pinner:
        def pin(self, batch: Any) -> PinStats:
            return PinStats(pinned=len(list(batch)), batches=1)

    m = Metrics(mode="map")
    agent = Agent(FakeDatapath(), options=AgentOptions(3600), pinner=Pinner(), metrics=m)
    rx = FakeReceiver()
    events = rx_with([syn(sport=i) for i in range(5)], sources=["5.5.5.5"]).drain()
    now = time.monotonic()
    rx.chunks = [(now - 1.0, events[:2]), (now, events[2:])]  # two reads, a second apart
    egress = EgressResolver({1: "10.0.1.2"}, counters=m.mirror)
    feed = MirrorFeed(agent, rx, egress, max_items=2, max_delay=0.001)
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, name="loop")
    fthread = threading.Thread(target=feed.run, args=(stop,), name="feed")
    loop.start()
    fthread.start()
    try:
        wait(lambda: m.pins["pinned"] == 5)
    finally:
        stop.set()
        fthread.join(5)
        agent.stop()
        loop.join(5)
        agent.close()
    h = m.latency
    assert h.count == 5
    # the two read a second earlier are in the (0.5, 1] bucket or above, the rest well below
    assert sum(n for b, n in zip(h.bounds, h.counts, strict=False) if b <= 0.5) == 3
    assert value(m, "dfagent_queue_depth", queue="mirror") == 0


# ── SIGHUP reload ───────────────────────────────────────────────────────────────────────
BASE: dict[str, Any] = {
    "vips": [{"prefix": "1.1.1.1/32", "mode": "kernel"}],
    "nexthops": {"s1": "10.2.1.2"},
    "metrics": {"address": "127.0.0.1:9642"},
}


@pytest.fixture
def cfg_file(tmp_path: Path) -> Iterator[Path]:
    p = tmp_path / "dfagent.yaml"
    p.write_text(yaml.safe_dump(BASE))
    yield p


def test_reload_applies_a_good_file_and_keeps_the_last_good_on_a_bad_one(
    cfg_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    m = Metrics(clock=lambda: clock[0])
    applied: list[Any] = []
    r = Reloader(str(cfg_file), load(str(cfg_file)), applied.append, m)
    assert value(m, "dfagent_config_last_reload_success_timestamp_seconds") == 1000
    # a bad file: nothing applied, the log says why with the path, the metric drops to 0
    cfg_file.write_text(yaml.safe_dump({**BASE, "nexthops": {"s1": "nope"}, "typo": 1}))
    clock[0] = 1010.0
    with caplog.at_level(logging.INFO, logger="dfagent.run"):
        assert r.reload() is False
    assert applied == []
    line = caplog.records[-1].getMessage()
    assert line.startswith("reload-rejected ") and "keeping=last-good" in line
    assert "nexthops.s1" in line and "unknown key 'typo'" in line
    assert value(m, "dfagent_config_last_reload_successful") == 0
    assert value(m, "dfagent_config_reloads_total", result="failure") == 1
    assert value(m, "dfagent_config_last_reload_success_timestamp_seconds") == 1000
    assert r.cfg.nexthops == {"s1": "10.2.1.2"}  # still the last good one
    # a good one: applied, the metric back to 1 with its time
    cfg_file.write_text(yaml.safe_dump({**BASE, "nexthops": {"s1": "10.2.1.2", "s2": "10.2.2.2"}}))
    clock[0] = 1020.0
    with caplog.at_level(logging.INFO, logger="dfagent.run"):
        assert r.reload() is True
    assert [c.nexthops for c in applied] == [{"s1": "10.2.1.2", "s2": "10.2.2.2"}]
    assert "reload-applied" in caplog.records[-1].getMessage()
    assert "changed=nexthops" in caplog.records[-1].getMessage()
    assert value(m, "dfagent_config_last_reload_successful") == 1
    assert value(m, "dfagent_config_last_reload_success_timestamp_seconds") == 1020
    assert value(m, "dfagent_config_restart_needed") == 0


def test_reload_names_the_keys_that_need_a_restart(
    cfg_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = Metrics()
    r = Reloader(str(cfg_file), load(str(cfg_file)), lambda c: None, m)
    cfg_file.write_text(
        yaml.safe_dump({**BASE, "vips": [{"prefix": "2.2.2.2/32", "mode": "kernel"}],
                        "linux": {"mark_mask": "0x00ff0000", "reconcile_interval": 2}})
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="dfagent.run"):
        assert r.reload() is True
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any(x.startswith("reload-restart-needed keys=vips,linux.mark_mask ") for x in msgs)
    assert value(m, "dfagent_config_restart_needed") == 1
    # back to the started values: nothing pending any more
    cfg_file.write_text(yaml.safe_dump(BASE))
    assert r.reload() is True
    assert value(m, "dfagent_config_restart_needed") == 0


def test_a_failing_apply_keeps_the_last_good_config(cfg_file: Path) -> None:
    m = Metrics()

    def boom(cfg: Any) -> None:
        raise RuntimeError("vtysh vanished")

    r = Reloader(str(cfg_file), load(str(cfg_file)), boom, m)
    first = r.cfg
    assert r.reload() is False
    assert r.cfg is first
    assert value(m, "dfagent_config_last_reload_successful") == 0


def test_changed_and_restart_keys() -> None:
    a = parse(BASE)
    b = parse({**BASE, "drain": {"actuator": "none"}, "log": {"level": "debug"},
               "mirror": {"sources": ["10.0.0.1"]}})  # fmt: skip
    keys = changed_keys(a, b)
    assert set(keys) == {"drain.actuator", "log.level", "mirror.sources"}
    assert restart_needed(keys) == []
    assert restart_needed(["metrics.address", "api.socket", "nexthops"]) == [
        "metrics.address",
        "api.socket",
    ]


def test_json_log_lines_carry_the_event_and_its_fields() -> None:
    import json

    from dfagent.agent.logs import JsonFormatter

    rec = logging.LogRecord(
        "dfagent.run", logging.ERROR, __file__, 1,
        "reload-rejected file=%s errors=%d keeping=last-good detail=%r",
        ("/etc/dfagent/dfagent.yaml", 2, "nexthops.s1: 'nope' is not an IP address"), None,
    )  # fmt: skip
    got = json.loads(JsonFormatter().format(rec))
    assert got["event"] == "reload-rejected" and got["component"] == "dfagent.run"
    assert got["level"] == "ERROR" and got["errors"] == "2"
    assert got["file"] == "/etc/dfagent/dfagent.yaml" and got["keeping"] == "last-good"
    assert got["detail"] == "nexthops.s1: 'nope' is not an IP address"
