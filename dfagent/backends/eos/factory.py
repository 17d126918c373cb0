"""An EOS backend from dfagent.yaml: the endpoint (password from the environment), the
profile, the renderer, the pin table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from dfagent.backends.eos.backend import EosBackend
from dfagent.backends.eos.drainconf import DrainSpec
from dfagent.backends.eos.egress import EosEgressQuery
from dfagent.backends.eos.render import renderer_for
from dfagent.backends.eos.session import Endpoint, EosSession
from dfagent.config import Config, EosConfig
from dfagent.core.pintable import PinTable
from dfagent.profiles import Profile, load_profile


class EosSetupError(ValueError):
    """The config cannot make a session (a missing password variable): one line."""


def split_endpoint(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, None


def endpoint(eos: EosConfig, environ: Mapping[str, str] = os.environ) -> Endpoint:
    password = ""
    if eos.password_env:
        if eos.password_env not in environ:
            raise EosSetupError(
                f"backend.eos.password_env: the environment variable {eos.password_env} is not "
                "set (it holds the eAPI password)"
            )
        password = environ[eos.password_env]
    host, port = split_endpoint(eos.endpoint) if eos.endpoint else (None, None)
    return Endpoint(
        name=eos.switch_name(),
        transport=eos.transport,
        host=host,
        port=port,
        username=eos.username,
        password=password,
        verify_tls=eos.verify_tls,
        ca_file=eos.tls_ca,
        socket_path=eos.socket_path,
        timeout=eos.timeout,
    )


def drain_spec(cfg: Config) -> DrainSpec | None:
    d = cfg.drain
    if d.actuator != "eos" or d.bgp_asn is None:
        return None
    return DrainSpec(d.bgp_asn, d.neighbors, d.route_map, d.prefix_list_v4, d.prefix_list_v6)


def build_backend(
    cfg: Config,
    environ: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.monotonic,
    session: EosSession | None = None,
) -> EosBackend:
    eos = cfg.backend.eos
    if eos is None:
        raise EosSetupError("backend.type is not eos")
    profile: Profile = load_profile(eos.profile)
    idle = int(cfg.mirror.pin_timeout)
    renderer = renderer_for(profile.pin_method, idle, eos.priority, eos.policy, eos.interfaces)
    table = PinTable(profile.capacity, idle, limit=eos.max_flows)
    b = EosBackend(
        session or EosSession(endpoint(eos, environ), clock=clock),
        profile,
        eos.prefix(),
        renderer,
        table,
        vips=tuple(v.prefix for v in cfg.vips),
        rate_limit=eos.rate_limit,
        clock=clock,
    )
    if egress_mode(cfg, profile) == "query":
        b.egress = EosEgressQuery(b.session)
    return b


def egress_mode(cfg: Config, profile: Profile | None = None) -> str:
    """observed | query: the config's, or the profile's first."""
    eos = cfg.backend.eos
    if eos is not None and eos.egress:
        return eos.egress
    profile = profile or load_profile(eos.profile if eos else "")
    return profile.egress[0]
