"""Building dfagent's EOS side against the test switch: a config as an operator writes it
(password in the environment), the backend from it, sharing the switch's fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dfagent.backends.eos.backend import EosBackend
from dfagent.backends.eos.factory import build_backend
from dfagent.config import Config, parse
from dfagent.core.pintable import Flow
from dfagent.lab.eapi import EapiSwitch, FakeClock, FlowEntry

VIP = "192.0.2.10"
VIP6 = "2001:db8::10"
PASSWORD_ENV = "DFAGENT_TEST_EAPI_PASSWORD"


def config(sw: EapiSwitch, prefix: str = "dfa_s1", **eos: Any) -> Config:
    drain = eos.pop("drain", None)
    nexthops = eos.pop("nexthops", None)
    data: dict[str, Any] = {
        "vips": [{"prefix": f"{VIP}/32", "mode": "mirror"},
                 {"prefix": f"{VIP6}/128", "mode": "mirror"}],
        "mirror": {"sources": ["any"]},
        "backend": {"type": "eos", "eos": {
            "profile": "arista-7050x", "endpoint": f"{sw.host}:{sw.port}", "transport": "http",
            "username": sw.username, "password_env": PASSWORD_ENV, "name": "sw1",
            "flow_prefix": prefix, "timeout": 2, **eos,
        }},
    }  # fmt: skip
    if drain:
        data["drain"] = drain
    if nexthops:
        data["nexthops"] = nexthops
    return parse(data)


def backend(
    sw: EapiSwitch, prefix: str = "dfa_s1", clock: Callable[[], float] | None = None, **eos: Any
) -> EosBackend:
    cfg = config(sw, prefix, **eos)
    return build_backend(cfg, environ={PASSWORD_ENV: sw.password}, clock=clock or sw.clock.now)


def fake_clock(sw: EapiSwitch) -> FakeClock:
    """The switch's clock, which the fixtures make a FakeClock (the tests move it)."""
    assert isinstance(sw.clock, FakeClock)
    return sw.clock


def flow_entry(sw: EapiSwitch, name: str) -> FlowEntry:
    """The switch's flow NAME, which must exist."""
    entry = sw.state.flow(name)
    assert entry is not None, f"no flow {name} on the switch"
    return entry


def flow(i: int, dst: str = VIP) -> Flow:
    if ":" in dst:
        return Flow(f"2001:db8:1::{i + 1:x}", dst, 1024 + i % 60000, 443)
    src = f"198.51.{100 + i // 60000}.{(i // 250) % 250 + 1}"
    return Flow(src, dst, 1024 + i % 60000, 443)


def item(i: int, nexthop: str = "10.2.1.2", dst: str = VIP) -> tuple[str, str, int, int, str]:
    f = flow(i, dst)
    return (f.src, f.dst, f.sport, f.dport, nexthop)
