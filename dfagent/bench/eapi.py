"""`dfagent bench eapi`: pins per second through one eAPI session to the test switch, batched
(many flows per ``runCmds``, as the agent writes them) against one flow per request (as the
2019 proof of concept did), in the same run; and the SYN→pin latency through the agent's
loop: synthetic mirrored SYNs at a steady rate → micro-batcher → loop → switch, from the
SYN's arrival to the switch's answer to the request that holds its pin.

Everything runs against :class:`dfagent.lab.eapi.EapiSwitch` on loopback over the real
pyeapi client (http by default; https with a self-signed certificate the session verifies).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dfagent.agent.eos import build_eos
from dfagent.backends.eos.backend import EosBackend
from dfagent.backends.eos.factory import build_backend
from dfagent.config import Config, parse
from dfagent.core.pinbatch import MicroBatcher, PinItem
from dfagent.core.pintable import Flow, Pin
from dfagent.lab.eapi import EapiSwitch, make_self_signed_cert

VIP = "192.0.2.10"
PASSWORD = "bench-pw"
ENV = "DFAGENT_BENCH_EAPI_PASSWORD"


def _config(sw: EapiSwitch, prefix: str, transport: str, ca: str | None) -> Config:
    eos: dict[str, Any] = {
        "profile": "arista-7050x", "endpoint": f"{sw.host}:{sw.port}", "transport": transport,
        "username": sw.username, "password_env": ENV, "flow_prefix": prefix, "name": "bench",
        "rate_limit": 1_000_000, "reconcile_interval": 3600,
    }  # fmt: skip
    if ca:
        eos["tls_ca"] = ca
    return parse({
        "vips": [{"prefix": f"{VIP}/32", "mode": "mirror"}],
        "mirror": {"sources": ["any"]},
        "backend": {"type": "eos", "eos": eos},
    })  # fmt: skip


def _item(i: int, nexthop: str = "10.2.1.2") -> tuple[str, str, int, int, str]:
    return (f"198.51.{100 + i // 50000}.{(i // 200) % 250 + 1}", VIP, 1024 + i % 50000, 443,
            nexthop)  # fmt: skip


def _rate(b: EosBackend, pins: int, per_call: int, offset: int) -> dict[str, float]:
    before = b.stats.requests
    t0 = time.perf_counter()
    for i in range(0, pins, per_call):
        b.pin([_item(offset + j) for j in range(i, min(pins, i + per_call))])
    dt = time.perf_counter() - t0
    if b.backlog or b.stats.write_errors:
        raise RuntimeError(f"pins not written: {b.stats.last_error or 'backlog left'}")
    return {"pins": pins, "seconds": round(dt, 3), "pins_per_s": round(pins / dt, 1),
            "requests": b.stats.requests - before}  # fmt: skip


def _latency(cfg: Config, rate: float, count: int, max_delay: float) -> dict[str, float]:
    """Synthetic SYNs at ``rate``/s through MicroBatcher → agent loop → switch."""
    agent, dp, _ = build_eos(cfg, build_backend(cfg, environ={ENV: PASSWORD}))
    arrived: dict[Flow, float] = {}
    lat: list[float] = []

    def written(pins: list[Pin]) -> None:
        now = time.perf_counter()
        lat.extend(now - arrived[p.flow] for p in pins if p.flow in arrived)

    dp.backend.on_written.append(written)
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    batcher = MicroBatcher(agent, max_items=256, max_delay=max_delay)
    try:
        t0 = time.perf_counter()
        for i in range(count):
            due = t0 + i / rate
            while (now := time.perf_counter()) < due:
                batcher.poll(now)
                time.sleep(min(0.0005, due - now))
            it = _item(500_000 + i, "10.2.2.2")
            arrived[Flow(*it[:4])] = time.perf_counter()
            batcher.add(PinItem(*it), time.perf_counter())
            batcher.poll(time.perf_counter())
        batcher.flush()
        end = time.monotonic() + 10
        while len(lat) < count and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        agent.stop()
        loop.join(5)
        agent.close()
    if len(lat) < count:
        raise RuntimeError(f"only {len(lat)} of {count} pins reached the switch")
    lat.sort()
    ms = [x * 1000 for x in lat]
    p99 = ms[int(0.99 * (len(ms) - 1))]
    return {"syns": count, "rate": rate, "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(p99, 2), "max_ms": round(ms[-1], 2)}  # fmt: skip


def run(
    pins: int = 1500,
    single: int = 300,
    batch: int = 256,
    transport: str = "http",
    syn_rate: float = 1000.0,
    syns: int = 1000,
    max_delay: float = 0.002,
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tls = make_self_signed_cert(Path(tmp)) if transport == "https" else None
        capacity = pins + single + syns + 10
        sw = EapiSwitch(username="bench", password=PASSWORD, capacity=capacity, tls=tls)
        sw.start()
        try:
            cfg = _config(sw, "dfa_bench", transport, tls[0] if tls else None)
            b = build_backend(cfg, environ={ENV: PASSWORD})
            b.table.capacity = capacity  # the bench measures writes, not eviction
            b.start()
            log(f"batched: {pins} pins, {batch} per micro-batch ({transport})")
            batched = _rate(b, pins, batch, 0)
            log(f"one flow per request: {single} pins")
            one = _rate(b, single, 1, pins)
            b.cleanup()
            cfg_l = _config(sw, "dfa_lat", transport, tls[0] if tls else None)
            log(f"SYN→pin latency: {syns} SYNs at {syn_rate:g}/s through the agent loop")
            latency = _latency(cfg_l, syn_rate, syns, max_delay)
        finally:
            sw.close()
    return {
        "transport": transport,
        "batched": batched,
        "one_per_request": one,
        "speedup": round(batched["pins_per_s"] / one["pins_per_s"], 1),
        "latency": latency,
        "target_pins_per_s": 1000,
        "target_met": batched["pins_per_s"] >= 1000,
    }


def format_table(r: dict[str, Any]) -> str:
    b, o, lat = r["batched"], r["one_per_request"], r["latency"]
    return "\n".join([
        f"eAPI pins through one session ({r['transport']}, test switch on loopback)",
        f"  batched          {b['pins']:>6} pins  {b['requests']:>5} requests  "
        f"{b['pins_per_s']:>9.1f} pins/s",
        f"  one per request  {o['pins']:>6} pins  {o['requests']:>5} requests  "
        f"{o['pins_per_s']:>9.1f} pins/s",
        f"  batched / one per request: {r['speedup']}x  (target ≥ 1,000 pins/s batched: "
        f"{'met' if r['target_met'] else 'NOT met'})",
        f"  SYN→pin at {lat['rate']:g} SYN/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
        f"max {lat['max_ms']} ms ({lat['syns']} SYNs)",
    ])  # fmt: skip
