"""`dfagent.yaml`: the one config schema, its defaults, and every error with its path.

    cfg = load("/etc/dfagent/dfagent.yaml")     # or parse(dict, source="…")
    cfg.vips[0].prefix, cfg.linux.gc_grace, cfg.nexthops["s1"]

Any problem raises :class:`ConfigError` holding *all* the errors found, each naming its path
(``vips[2].prefix: 10.0.0.1/8 has host bits set``), so an operator fixes a file in one pass and
nothing is applied from a file with a single error in it. Unknown keys are errors (a typo
would otherwise silently leave a default in place), with a suggestion when one is close.

Why these sections:

- ``vips`` is a list of mappings, not a list of prefixes: each VIP carries its mode
  (``kernel`` | ``mirror``), a name for logs and metrics, and its protocols; a list keeps the
  operator's order (the agent logs and reports VIPs in it). ``mode`` has no default: kernel
  and mirror are different promises (which box decides the next hop) and on EOS only
  ``mirror`` exists, so the file says which one it means.
- ``linux`` holds what the Linux datapath needs and nothing else (the flags of ``dfagent
  linux kernel|map``), ``mirror`` what receiving mirrored SYNs needs: a ``kernel``-only router
  never reads ``mirror``.
- ``mirror.sources`` is closed by default: a host that can send GRE to the router could
  otherwise create pins; accepting everyone must be written out (``[any]``).
- ``nexthops`` gives names to next hops (``dfagent drain s1``, logs, mirror sessions), one
  address each; a name and an address are never ambiguous (a name cannot parse as an address).
- ``drain``, ``backend``, ``api``, ``metrics`` and ``log`` are read by components being built
  (issue 8): the schema pins down their shape now so that files written today keep loading.
- Secrets never live in the file: ``backend.eos.password_env`` names an environment variable.

Defaults are written once, here (``DEFAULT_*``); the CLI and ``DatapathConfig`` import them.
The mark mask's default stays in :mod:`dfagent.core.marks` next to the mark layout it belongs
to (this module validates with that module's ``parse_mask``, so it cannot be imported from
here without a cycle) and is re-exported below.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import shlex
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dfagent.core.egress import check_nexthop_text, check_session_id
from dfagent.core.marks import DEFAULT_MARK_MASK, parse_mask
from dfagent.core.nexthops import IPNetwork, parse_vip

# ── defaults (the only place they are written) ──────────────────────────────────────────
DEFAULT_STATE_DIR = "/var/lib/dfagent"  # …/netns/NAME inside `ip netns exec NAME`
DEFAULT_RECONCILE_INTERVAL = 5.0  # seconds between full passes (events act at once)
DEFAULT_GC_GRACE = 5.0  # seconds a drained next hop with no pins keeps its rule and table
DEFAULT_DEAD_HOLD = 30.0  # seconds a dead next hop is remembered while marks carry it
DEFAULT_FIN_TIMEOUT = 30  # one direction: seconds a pin lives after FIN/RST
DEFAULT_PIN_TIMEOUT = 300  # seconds a map-mode pin lives in its nft map
DEFAULT_PIN_MAP_SIZE = 2_000_000  # flows per pin map (nft caps an unsized set at 65535)
DEFAULT_BATCH_MAX_ITEMS = 256  # pins per nft transaction
DEFAULT_BATCH_MAX_DELAY_MS = 2.0  # the longest a mirrored SYN waits for its batch
DEFAULT_VTYSH = ("vtysh",)
DEFAULT_DRAIN_PREFIX_LIST_V4 = "DRAIN4"
DEFAULT_DRAIN_PREFIX_LIST_V6 = "DRAIN6"
DEFAULT_DRAIN_WAIT_TIMEOUT = 600.0  # `drain --wait` gives up after this many seconds
DEFAULT_API_SOCKET = "/run/dfagent/dfagent.sock"
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9642"  # with a metrics section that names none
DEFAULT_EOS_USERNAME = "admin"
DEFAULT_EOS_TIMEOUT = 10.0  # seconds an eAPI request may take
DEFAULT_EOS_RECONCILE_INTERVAL = 10.0  # seconds between looks at the switch's flows
DEFAULT_EOS_RATE_LIMIT = 2000  # pins per second written to one switch
DEFAULT_EOS_PRIORITY = 100  # DirectFlow priority of pins
DEFAULT_EOS_POLICY = "DFAGENT-PINS"  # PBR policy-map / traffic-policy holding the pins
DEFAULT_EOS_ROUTE_MAP = "DFAGENT-DRAIN"

MODES = ("kernel", "mirror")
PROTOCOLS = ("tcp", "udp")
DEFAULT_PROTOCOLS = ("tcp",)
BACKENDS = ("linux", "eos")
EOS_TRANSPORTS = ("https", "http", "socket")
ACTUATORS = ("frr", "eos", "none")
LOG_FORMATS = ("kv", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
ANY = "any"
MAX_NUMBER = 0xFFFFFFFF  # the largest count, size or time any key takes
# a name must not read as an address, so `dfagent drain X` is never ambiguous
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """Every problem found in one config, each a line starting with (or naming) its path."""

    def __init__(self, errors: list[str], source: str = "<config>") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.errors))


# ── the schema ───────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Vip:
    prefix: IPNetwork
    mode: str  # kernel | mirror
    name: str | None = None
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS


@dataclass(frozen=True)
class LinuxConfig:
    state_dir: str | None = None  # None: DEFAULT_STATE_DIR, or …/netns/NAME in a netns
    mark_mask: int = DEFAULT_MARK_MASK
    nft_include: str | None = None  # None: STATE_DIR/dfagent.nft
    repair: bool = True
    allow_mark_overlap: bool = False
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    gc_grace: float = DEFAULT_GC_GRACE
    dead_hold: float = DEFAULT_DEAD_HOLD
    one_direction: bool = False
    notrack: bool = False
    fin_timeout: int = DEFAULT_FIN_TIMEOUT
    ct_copy: bool = False  # kernel mode: pins outlive a conntrack flush (a copy in nft maps)
    # traffic not for a VIP is not tracked because of dfagent (unless others use conntrack)
    untrack_others: bool = True
    syn_untracked: bool = False  # SYN-flood guard: VIP entries made by the first ACK


@dataclass(frozen=True)
class BatchConfig:
    max_items: int = DEFAULT_BATCH_MAX_ITEMS
    max_delay_ms: float = DEFAULT_BATCH_MAX_DELAY_MS


@dataclass(frozen=True)
class MirrorConfig:
    listen: tuple[str, ...] = ()  # local addresses mirrors arrive on; () = any local address
    sources: tuple[str, ...] = ()  # () = closed; ("any",) = every host
    sessions: Mapping[int, str] = field(default_factory=dict)  # id → next hop text or name
    pin_timeout: int = DEFAULT_PIN_TIMEOUT
    pin_map_size: int = DEFAULT_PIN_MAP_SIZE
    batch: BatchConfig = BatchConfig()
    # second chance: SYN-ACKs mirrored where the servers' answers enter pin too
    synack: bool = False
    # Linux, both directions: a flow without a pin from a mirror is recorded where the route
    # sent it (kernel mode's record rule), the fallback when both mirror copies are lost
    record: bool = False
    # Linux, both directions: a full pin map evicts its oldest pins (~200 B a pin in the agent)
    evict: bool = False
    # Linux (linux-nftables profile): "query" asks the kernel for an IPv4 flow's egress
    # when its mirror names no known session (backends/linux/egress.py); IPv6 stays observed
    egress: str = "observed"

    @property
    def any_source(self) -> bool:
        return self.sources == (ANY,)


@dataclass(frozen=True)
class DrainConfig:
    actuator: str = "frr"
    vtysh: tuple[str, ...] = DEFAULT_VTYSH
    prefix_list_v4: str = DEFAULT_DRAIN_PREFIX_LIST_V4
    prefix_list_v6: str = DEFAULT_DRAIN_PREFIX_LIST_V6
    wait_timeout: float = DEFAULT_DRAIN_WAIT_TIMEOUT
    bgp_hostnames: bool = True  # also name next hops by their BGP neighbour's hostname
    # actuator eos: the switch's BGP process and the server peers the drain route-map goes on
    bgp_asn: int | None = None
    neighbors: tuple[str, ...] = ()
    route_map: str = DEFAULT_EOS_ROUTE_MAP


@dataclass(frozen=True)
class EosConfig:
    profile: str
    endpoint: str | None  # host[:port]; None with transport socket (on the switch itself)
    transport: str = "https"
    username: str = DEFAULT_EOS_USERNAME
    password_env: str | None = None
    verify_tls: bool = True
    name: str | None = None  # the switch's name (logs, --switch); None: the endpoint's host
    flow_prefix: str | None = None  # this agent's flow names; None: dfa_<hostname>
    tls_ca: str | None = None
    socket_path: str | None = None  # transport socket; None: EOS's /var/run/command-api.sock
    timeout: float = DEFAULT_EOS_TIMEOUT
    reconcile_interval: float = DEFAULT_EOS_RECONCILE_INTERVAL
    rate_limit: int = DEFAULT_EOS_RATE_LIMIT
    max_flows: int | None = None  # this agent's share of the switch (profile capacity: None)
    priority: int = DEFAULT_EOS_PRIORITY
    policy: str = DEFAULT_EOS_POLICY
    interfaces: tuple[str, ...] = ()  # ingress interfaces of the PBR/traffic-policy pins
    egress: str | None = None  # observed | query; None: the profile's first

    def switch_name(self) -> str:
        if self.name:
            return self.name
        if self.endpoint:
            if self.endpoint.startswith("["):
                return self.endpoint[1:].partition("]")[0]
            return self.endpoint.split(":")[0] if self.endpoint.count(":") == 1 else self.endpoint
        return "local"

    def prefix(self) -> str:
        """The flow-name prefix: the configured one, or one made from this host's name."""
        if self.flow_prefix:
            return self.flow_prefix
        host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname().split(".")[0])[:19]
        return f"dfa_{host}"


@dataclass(frozen=True)
class BackendConfig:
    type: str = "linux"
    eos: EosConfig | None = None


@dataclass(frozen=True)
class ApiTcp:
    address: str  # host:port
    tls_cert: str
    tls_key: str
    tls_client_ca: str


@dataclass(frozen=True)
class ApiConfig:
    socket: str = DEFAULT_API_SOCKET
    tcp: ApiTcp | None = None


@dataclass(frozen=True)
class LogConfig:
    format: str = "kv"
    level: str = "info"


@dataclass(frozen=True)
class Config:
    vips: tuple[Vip, ...]
    linux: LinuxConfig = LinuxConfig()
    mirror: MirrorConfig = MirrorConfig()
    nexthops: Mapping[str, str] = field(default_factory=dict)  # name → (first) ADDR[%IFNAME]
    # name → every address it stands for (a server's v4 and v6 next hops)
    nexthop_addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    drain: DrainConfig = DrainConfig()
    backend: BackendConfig = BackendConfig()
    api: ApiConfig = ApiConfig()
    # off unless the file has a metrics section (an agent opens no port it was not asked to)
    metrics_address: str | None = None
    log: LogConfig = LogConfig()

    def modes(self) -> set[str]:
        return {v.mode for v in self.vips}

    def session_nexthop(self, session: int) -> str | None:
        """The next-hop text of a mirror session, with a name resolved to its address."""
        nh = self.mirror.sessions.get(session)
        return self.nexthops.get(nh, nh) if nh is not None else None

    def session_families(self, session: int) -> dict[int, str]:
        """A session naming a next hop with several addresses: family → its first address
        of that family ({} for an address or a name with one address)."""
        addrs = self.nexthop_addresses.get(self.mirror.sessions.get(session, ""), ())
        out: dict[int, str] = {}
        for a in addrs:
            head = a.partition("%")[0]
            if head:
                out.setdefault(ipaddress.ip_address(head).version, a)
        return out if len(out) > 1 else {}


# ── reading ──────────────────────────────────────────────────────────────────────────────
class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append(f"{path}: {msg}")

    def under(self, path: str) -> bool:
        """Whether an error was already reported at ``path`` or below it."""
        return any(e.startswith((f"{path}:", f"{path}.", f"{path}[")) for e in self.items)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return path or "top level"


def _typename(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def _section(
    err: _Errors, path: str, value: Any, keys: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any] | None:
    """``value`` as a mapping with only ``keys``; unknown and missing keys are errors."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        err.add(_where(path), f"expected a mapping, got {_typename(value)}")
        return None
    known = list(keys)
    for k in value:
        if not isinstance(k, str) or k not in known:
            close = difflib.get_close_matches(str(k), known, n=1) if isinstance(k, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            err.items.append(f"unknown key {k!r} at {_where(path)}{hint}")
    for k in required:
        if value.get(k) is None:
            err.add(_join(path, k), "required")
    return dict(value)


def _bool(err: _Errors, path: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        err.add(path, f"expected true or false, got {_typename(value)}")
        return default
    return value


def _number(
    err: _Errors, path: str, value: Any, default: float, unit: str, integer: bool = False
) -> Any:
    """A positive number (``integer``: a whole one); ``unit`` goes into the message."""
    if value is None:
        return default
    kind = "a whole number" if integer else "a number"
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        err.add(path, f"expected {kind} of {unit}, got {_typename(value)}")
        return default
    if not value > 0:  # NaN too
        err.add(path, f"must be more than 0 {unit}, got {value}")
        return default
    if value > MAX_NUMBER:  # nft sizes are 32 bits; also keeps float() from overflowing
        err.add(path, f"must be at most {MAX_NUMBER} {unit}, got {value}")
        return default
    return value if integer else float(value)


def _choice(err: _Errors, path: str, value: Any, choices: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        err.add(path, f"{value!r} is not one of {' | '.join(choices)}{hint}")
        return default
    return str(value)


def _text(err: _Errors, path: str, value: Any, default: str | None) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        err.add(path, f"expected text, got {_typename(value)}")
        return default
    return value


def _path(err: _Errors, path: str, value: Any, default: str | None) -> str | None:
    got = _text(err, path, value, default)
    if value is not None and got is not None and got != default and not got.startswith("/"):
        err.add(path, f"{got!r} is not an absolute path")
        return default
    return got


def _list(err: _Errors, path: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        err.add(path, f"expected a list, got {_typename(value)}")
        return []
    return value


def _host_port(text: str) -> str | None:
    """Why ``text`` is not ``HOST:PORT`` (``[v6]:port`` for IPv6), or None."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return f"{text!r} is not HOST:PORT"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"{text!r}: {port!r} is not a port (1-65535)"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{text!r}: {host[1:-1]!r} is not an IPv6 address"
    elif ":" in host:
        return f"{text!r}: write an IPv6 address in brackets, [{host}]:{port}"
    return None


# ── sections ─────────────────────────────────────────────────────────────────────────────
VIP_KEYS = ("prefix", "mode", "name", "protocols")


def _vips(err: _Errors, value: Any) -> list[tuple[int, Vip]]:
    """The VIPs that read cleanly, each with its index in the file (for later messages)."""
    if value is None:
        err.add("vips", "required: at least one VIP")
        return []
    items = _list(err, "vips", value)
    if isinstance(value, list) and not value:
        err.add("vips", "at least one VIP")
    out: list[tuple[int, Vip]] = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        path = f"vips[{i}]"
        d = _section(err, path, item, VIP_KEYS, required=("prefix", "mode"))
        if d is None:
            continue
        mode = d.get("mode")
        if mode == "map":  # the CLI's name for mirror mode on Linux
            err.add(f"{path}.mode", "'map' is not one of kernel | mirror (map mode is mirror)")
            mode = None
        mode = _choice(err, f"{path}.mode", mode, MODES, "") if mode is not None else ""
        name = _text(err, f"{path}.name", d.get("name"), None)
        if name is not None:
            if not _NAME.match(name):
                err.add(
                    f"{path}.name", f"{name!r} is not a name (a letter, then A-Z a-z 0-9 _ . -)"
                )
            elif name in names:
                err.add(f"{path}.name", f"{name!r} is already the name of vips[{names[name]}]")
            else:
                names[name] = i
        protocols = _protocols(err, f"{path}.protocols", d.get("protocols"))
        prefix = d.get("prefix")
        if prefix is None:
            continue
        if not isinstance(prefix, str):
            err.add(
                f"{path}.prefix", f"expected a prefix like 192.0.2.10/32, got {_typename(prefix)}"
            )
            continue
        try:
            net = parse_vip(prefix)
        except ValueError as exc:
            err.add(f"{path}.prefix", str(exc))
            continue
        for j, other in out:
            if other.prefix.version == net.version and other.prefix.overlaps(net):
                err.add(
                    f"{path}.prefix",
                    f"{net} overlaps vips[{j}].prefix {other.prefix}: give the covering "
                    "prefix once",
                )
                break
        else:
            if mode:
                out.append((i, Vip(net, mode, name, protocols)))
    return out


def _protocols(err: _Errors, path: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_PROTOCOLS
    items = _list(err, path, value)
    if isinstance(value, list) and not value:
        err.add(path, "at least one protocol (tcp, udp)")
    for i, p in enumerate(items):
        if p not in PROTOCOLS:
            err.add(f"{path}[{i}]", f"{p!r} is not supported: tcp or udp")
    return tuple(dict.fromkeys(p for p in items if p in PROTOCOLS)) or DEFAULT_PROTOCOLS


def vip_protocols(
    specs: Iterable[str], vips: Iterable[IPNetwork]
) -> tuple[tuple[IPNetwork, tuple[str, ...]], ...]:
    """``--protocols`` of ``dfagent linux kernel``: ``tcp,udp`` (every VIP) or
    ``VIP=tcp,udp`` (that VIP) → (VIP, protocols) for VIPs that differ from the default.
    Raises ValueError naming the bad part."""
    vips = tuple(vips)
    chosen: dict[IPNetwork, tuple[str, ...]] = {}
    for spec in specs:
        target, sep, names = spec.rpartition("=")
        protos = tuple(dict.fromkeys(p.strip() for p in names.split(",")))
        bad = [p for p in protos if p not in PROTOCOLS]
        if bad or not protos:
            raise ValueError(f"{spec!r}: {', '.join(bad) or 'nothing'} is not tcp or udp")
        if not sep:
            chosen.update((v, protos) for v in vips)
            continue
        try:
            net = parse_vip(target)
        except ValueError as exc:
            raise ValueError(f"{spec!r}: {exc}") from None
        if net not in vips:
            raise ValueError(f"{spec!r}: {net} is not one of the --vip prefixes")
        chosen[net] = protos
    default = DEFAULT_PROTOCOLS
    return tuple((v, chosen[v]) for v in vips if chosen.get(v, default) != default)


LINUX_KEYS = tuple(f.name for f in dataclasses.fields(LinuxConfig))


def _linux(err: _Errors, value: Any) -> LinuxConfig:
    d = _section(err, "linux", value, LINUX_KEYS)
    if d is None:
        return LinuxConfig()
    dflt = LinuxConfig()
    mask = dflt.mark_mask
    raw_mask = d.get("mark_mask")
    if raw_mask is not None:
        if isinstance(raw_mask, bool) or not isinstance(raw_mask, int | str):
            err.add(
                "linux.mark_mask", f"expected a mask like 0x0fff0000, got {_typename(raw_mask)}"
            )
        else:
            try:
                mask = parse_mask(raw_mask)
            except ValueError as exc:
                err.add("linux.mark_mask", str(exc))
    one_direction = _bool(err, "linux.one_direction", d.get("one_direction"), False)
    notrack = _bool(err, "linux.notrack", d.get("notrack"), False)
    if notrack and not one_direction:
        err.add("linux.notrack", "needs one_direction: true (otherwise the pins live in conntrack)")
    if d.get("syn_untracked") is True and one_direction:
        err.add("linux.syn_untracked", "one-direction pins do not use conntrack")
    secs = "seconds"
    return LinuxConfig(
        state_dir=_path(err, "linux.state_dir", d.get("state_dir"), None),
        mark_mask=mask,
        nft_include=_path(err, "linux.nft_include", d.get("nft_include"), None),
        repair=_bool(err, "linux.repair", d.get("repair"), True),
        allow_mark_overlap=_bool(
            err, "linux.allow_mark_overlap", d.get("allow_mark_overlap"), False
        ),
        reconcile_interval=_number(
            err,
            "linux.reconcile_interval",
            d.get("reconcile_interval"),
            dflt.reconcile_interval,
            secs,
        ),
        gc_grace=_number(err, "linux.gc_grace", d.get("gc_grace"), dflt.gc_grace, secs),
        dead_hold=_number(err, "linux.dead_hold", d.get("dead_hold"), dflt.dead_hold, secs),
        one_direction=one_direction,
        notrack=notrack,
        ct_copy=_bool(err, "linux.ct_copy", d.get("ct_copy"), False),
        untrack_others=_bool(err, "linux.untrack_others", d.get("untrack_others"), True),
        syn_untracked=_bool(err, "linux.syn_untracked", d.get("syn_untracked"), False),
        fin_timeout=_number(
            err, "linux.fin_timeout", d.get("fin_timeout"), dflt.fin_timeout, secs, integer=True
        ),
    )


MIRROR_KEYS = (
    "listen", "sources", "sessions", "pin_timeout", "pin_map_size", "batch", "synack",
    "record", "evict", "egress",
)  # fmt: skip


def _addresses(err: _Errors, path: str, value: Any, allow_any: bool) -> tuple[str, ...]:
    if allow_any and value == ANY:
        err.add(path, "expected a list: write [any]")
        return ()
    items = _list(err, path, value)
    out = []
    for i, a in enumerate(items):
        if allow_any and a == ANY:
            if len(items) > 1:
                err.add(f"{path}[{i}]", "`any` cannot be combined with addresses")
            out.append(ANY)
            continue
        try:
            out.append(str(ipaddress.ip_address(a if isinstance(a, str) else "")))
        except ValueError:
            err.add(f"{path}[{i}]", f"{a!r} is not an IP address")
    return tuple(out)


def _mirror(err: _Errors, value: Any, names: Mapping[str, str]) -> MirrorConfig:
    d = _section(err, "mirror", value, MIRROR_KEYS)
    if d is None:
        return MirrorConfig()
    dflt = MirrorConfig()
    sessions: dict[int, str] = {}
    raw = d.get("sessions")
    if raw is not None and not isinstance(raw, Mapping):
        err.add(
            "mirror.sessions", f"expected a mapping of session id → next hop, got {_typename(raw)}"
        )
    for sid, nh in (raw or {}).items() if isinstance(raw, Mapping) else ():
        path = f"mirror.sessions.{sid}"
        why = check_session_id(str(sid)) if not isinstance(sid, bool) else "not a session id"
        if why:
            err.add(path, why)
            continue
        if not isinstance(nh, str):
            err.add(
                path,
                f"expected a next hop (ADDR, ADDR%IFNAME, %IFNAME or a name), got {_typename(nh)}",
            )
            continue
        if nh not in names:
            why = check_nexthop_text(nh)
            if why:
                hint = " or a name under nexthops" if "not an IP address" in why else ""
                err.add(path, why + hint)
                continue
        if int(sid) in sessions:
            err.add(path, f"session {int(sid)} given twice")
            continue
        sessions[int(sid)] = nh
    batch = _section(err, "mirror.batch", d.get("batch"), ("max_items", "max_delay_ms")) or {}
    return MirrorConfig(
        listen=_addresses(err, "mirror.listen", d.get("listen"), allow_any=False),
        sources=_addresses(err, "mirror.sources", d.get("sources"), allow_any=True),
        sessions=sessions,
        pin_timeout=_number(
            err, "mirror.pin_timeout", d.get("pin_timeout"), dflt.pin_timeout, "seconds", True
        ),
        pin_map_size=_number(
            err, "mirror.pin_map_size", d.get("pin_map_size"), dflt.pin_map_size, "flows", True
        ),
        batch=BatchConfig(
            max_items=_number(
                err, "mirror.batch.max_items", batch.get("max_items"),
                DEFAULT_BATCH_MAX_ITEMS, "pins", True,
            ),
            max_delay_ms=_number(
                err, "mirror.batch.max_delay_ms", batch.get("max_delay_ms"),
                DEFAULT_BATCH_MAX_DELAY_MS, "milliseconds",
            ),
        ),
        synack=_bool(err, "mirror.synack", d.get("synack"), dflt.synack),
        record=_bool(err, "mirror.record", d.get("record"), dflt.record),
        evict=_bool(err, "mirror.evict", d.get("evict"), dflt.evict),
        egress=_choice(err, "mirror.egress", d.get("egress"), ("observed", "query"), dflt.egress),
    )  # fmt: skip


def _nexthops(err: _Errors, value: Any) -> dict[str, tuple[str, ...]]:
    """name → its addresses: one (``s1: 10.2.1.2``) or a server's v4 and v6 next hops
    (``s1: [10.2.1.2, fd00:2:1::2]``: a drain acts on both)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        err.add("nexthops", f"expected a mapping of name → address, got {_typename(value)}")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    by_addr: dict[str, str] = {}
    for name, given in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            err.add(
                f"nexthops.{name}", f"{name!r} is not a name (a letter, then A-Z a-z 0-9 _ . -)"
            )
            continue
        items = given if isinstance(given, list) and given else [given]
        for i, addr in enumerate(items):
            path = f"nexthops.{name}" + (f"[{i}]" if isinstance(given, list) else "")
            if _nexthop_address(err, path, addr, name, by_addr):
                out[name] = (*out.get(name, ()), addr)
    return out


def _nexthop_address(
    err: _Errors, path: str, addr: Any, name: str, by_addr: dict[str, str]
) -> bool:
    if not isinstance(addr, str):
        err.add(path, f"expected an address (ADDR or ADDR%IFNAME), got {_typename(addr)}")
        return False
    why = check_nexthop_text(addr)
    if why is None and addr.startswith("%"):
        why = f"{addr!r} has no address: write ADDR or ADDR%IFNAME (drain acts on addresses)"
    if why:
        err.add(path, why)
        return False
    ip, sep, ifname = addr.partition("%")
    key = f"{ipaddress.ip_address(ip)}{sep}{ifname}"  # 10.0.0.1 and 10.00.0.1 are one
    if key in by_addr:
        err.add(path, f"{addr} is already named {by_addr[key]}")
        return False
    by_addr[key] = name
    return True


DRAIN_KEYS = (
    "actuator", "vtysh", "prefix_lists", "wait_timeout", "bgp_hostnames", "bgp_asn",
    "neighbors", "route_map",
)  # fmt: skip
_EOS_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")  # an EOS name or address


def _drain(err: _Errors, value: Any) -> DrainConfig:
    d = _section(err, "drain", value, DRAIN_KEYS)
    if d is None:
        return DrainConfig()
    vtysh: tuple[str, ...] = DEFAULT_VTYSH
    raw = d.get("vtysh")
    if isinstance(raw, str) and raw.strip():
        vtysh = tuple(shlex.split(raw))  # "ip netns exec lb vtysh" reads better than a list
    elif isinstance(raw, list) and raw and all(isinstance(a, str) and a for a in raw):
        vtysh = tuple(raw)
    elif raw is not None:
        err.add(
            "drain.vtysh", f"expected a command (text or a list of words), got {_typename(raw)}"
        )
    plists = _section(err, "drain.prefix_lists", d.get("prefix_lists"), ("v4", "v6")) or {}
    got = {}
    for fam, default in (
        ("v4", DEFAULT_DRAIN_PREFIX_LIST_V4),
        ("v6", DEFAULT_DRAIN_PREFIX_LIST_V6),
    ):
        name = _text(err, f"drain.prefix_lists.{fam}", plists.get(fam), default) or default
        if any(c.isspace() for c in name):
            err.add(f"drain.prefix_lists.{fam}", f"{name!r}: a prefix-list name has no spaces")
        got[fam] = name
    return DrainConfig(
        actuator=_choice(err, "drain.actuator", d.get("actuator"), ACTUATORS, "frr"),
        vtysh=vtysh,
        prefix_list_v4=got["v4"],
        prefix_list_v6=got["v6"],
        wait_timeout=_number(
            err, "drain.wait_timeout", d.get("wait_timeout"), DEFAULT_DRAIN_WAIT_TIMEOUT, "seconds"
        ),
        bgp_hostnames=_bool(err, "drain.bgp_hostnames", d.get("bgp_hostnames"), True),
        bgp_asn=_asn(err, "drain.bgp_asn", d.get("bgp_asn")),
        neighbors=_words(err, "drain.neighbors", d.get("neighbors"), "a neighbor or peer group"),
        route_map=_word(err, "drain.route_map", d.get("route_map"), DEFAULT_EOS_ROUTE_MAP),
    )


def _asn(err: _Errors, path: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_NUMBER:
        err.add(path, f"expected an AS number (1-{MAX_NUMBER}), got {_typename(value)}")
        return None
    return value


def _word(err: _Errors, path: str, value: Any, default: str) -> str:
    got = _text(err, path, value, default) or default
    if not _EOS_WORD.match(got):
        err.add(path, f"{got!r} is not a name (letters, digits, _ . : / -; no spaces)")
        return default
    return got


def _words(err: _Errors, path: str, value: Any, what: str) -> tuple[str, ...]:
    out = []
    for i, w in enumerate(_list(err, path, value)):
        if not isinstance(w, str) or not _EOS_WORD.match(w):
            err.add(f"{path}[{i}]", f"expected {what}, got {_typename(w)}")
            continue
        out.append(w)
    return tuple(out)


EOS_KEYS = (
    "profile", "endpoint", "transport", "username", "password_env", "verify_tls", "name",
    "flow_prefix", "tls_ca", "socket_path", "timeout", "reconcile_interval", "rate_limit",
    "max_flows", "priority", "policy", "interfaces", "egress",
)  # fmt: skip


def _backend(err: _Errors, value: Any) -> BackendConfig:
    d = _section(err, "backend", value, ("type", "eos"))
    if d is None:
        return BackendConfig()
    kind = _choice(err, "backend.type", d.get("type"), BACKENDS, "linux")
    raw = d.get("eos")
    if kind != "eos":
        if raw is not None:
            err.add("backend.eos", f"only with type: eos (type is {kind})")
        return BackendConfig(kind)
    if raw is None:
        err.add("backend.eos", "required when type is eos (profile, endpoint)")
        return BackendConfig(kind)
    if isinstance(raw, Mapping) and "password" in raw:
        err.add("backend.eos.password", "secrets stay out of this file: put the password in an "
                "environment variable and name it in password_env")  # fmt: skip
        raw = {k: v for k, v in raw.items() if k != "password"}
    e = _section(err, "backend.eos", raw, EOS_KEYS, required=("profile",))
    if e is None:
        return BackendConfig(kind)
    transport = _choice(err, "backend.eos.transport", e.get("transport"), EOS_TRANSPORTS, "https")
    endpoint = _text(err, "backend.eos.endpoint", e.get("endpoint"), None)
    if transport == "socket":
        if endpoint is not None:
            err.add(
                "backend.eos.endpoint", "not with transport socket (the agent runs on the switch)"
            )
    elif endpoint is None:
        err.add("backend.eos.endpoint", f"required with transport {transport} (HOST or HOST:PORT)")
    password_env = _text(err, "backend.eos.password_env", e.get("password_env"), None)
    if password_env is not None and not _ENV_NAME.match(password_env):
        err.add("backend.eos.password_env", f"{password_env!r} is not an environment variable name")
    if endpoint is not None and transport != "socket":
        why = _endpoint(endpoint)
        if why:
            err.add("backend.eos.endpoint", why)
    profile = _text(err, "backend.eos.profile", e.get("profile"), "") or ""
    if profile:
        _check_profile(err, profile)
    prefix = _text(err, "backend.eos.flow_prefix", e.get("flow_prefix"), None)
    if prefix is not None:
        from dfagent.backends.eos.names import check_prefix

        why = check_prefix(prefix)
        if why:
            err.add("backend.eos.flow_prefix", why)
    socket_path = _path(err, "backend.eos.socket_path", e.get("socket_path"), None)
    if socket_path is not None and transport != "socket":
        err.add("backend.eos.socket_path", f"only with transport socket (transport is {transport})")
    name = _text(err, "backend.eos.name", e.get("name"), None)
    if name is not None and not _NAME.match(name):
        err.add("backend.eos.name", f"{name!r} is not a name (a letter, then A-Z a-z 0-9 _ . -)")
    max_flows = e.get("max_flows")
    if max_flows is not None:
        max_flows = _number(err, "backend.eos.max_flows", max_flows, 0, "flows", True) or None
    dflt = EosConfig("", None)
    return BackendConfig(
        kind,
        EosConfig(
            profile=_text(err, "backend.eos.profile", e.get("profile"), "") or "",
            endpoint=endpoint,
            transport=transport,
            username=_text(err, "backend.eos.username", e.get("username"), DEFAULT_EOS_USERNAME)
            or DEFAULT_EOS_USERNAME,
            password_env=password_env,
            verify_tls=_bool(err, "backend.eos.verify_tls", e.get("verify_tls"), True),
            name=name,
            flow_prefix=prefix,
            tls_ca=_path(err, "backend.eos.tls_ca", e.get("tls_ca"), None),
            socket_path=socket_path,
            timeout=_number(err, "backend.eos.timeout", e.get("timeout"), dflt.timeout, "seconds"),
            reconcile_interval=_number(
                err, "backend.eos.reconcile_interval", e.get("reconcile_interval"),
                dflt.reconcile_interval, "seconds",
            ),
            rate_limit=_number(
                err, "backend.eos.rate_limit", e.get("rate_limit"), dflt.rate_limit,
                "pins per second", True,
            ),
            max_flows=max_flows,
            priority=_priority(err, "backend.eos.priority", e.get("priority"), dflt.priority),
            policy=_word(err, "backend.eos.policy", e.get("policy"), DEFAULT_EOS_POLICY),
            interfaces=_words(
                err, "backend.eos.interfaces", e.get("interfaces"), "an interface name"
            ),
            egress=_egress(err, e.get("egress"), profile),
        ),
    )  # fmt: skip


def _endpoint(text: str) -> str | None:
    """Why ``text`` is not ``HOST`` or ``HOST:PORT`` (``[v6]:port``), or None."""
    if text.count(":") == 1 or text.startswith("["):
        return _host_port(text)
    if any(c.isspace() or c == "/" for c in text):
        return f"{text!r} is not HOST or HOST:PORT"
    return None


def _priority(err: _Errors, path: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        err.add(path, f"expected a priority 0-65535, got {_typename(value)}")
        return default
    return value


def _egress(err: _Errors, value: Any, profile: str) -> str | None:
    if value is None:
        return None
    got = _choice(err, "backend.eos.egress", value, ("observed", "query"), "")
    if got and profile:
        from dfagent.profiles import load_profile

        try:
            modes = load_profile(profile).egress
        except ConfigError:
            return got  # the profile's own error is reported at backend.eos.profile
        if got not in modes:
            err.add("backend.eos.egress", f"{profile} supports {' | '.join(modes)}, not {got}")
    return got or None


def _check_profile(err: _Errors, name: str) -> None:
    from dfagent.profiles import load_profile  # profiles reads files with this module's helpers

    try:
        prof = load_profile(name)
    except ConfigError as exc:
        for e in exc.errors:
            err.add("backend.eos.profile", e if exc.source == "profile" else f"{exc.source}: {e}")
        return
    if prof.platform != "eos":
        err.add("backend.eos.profile", f"{name} is a {prof.platform} profile, not an EOS one")


TCP_KEYS = ("address", "tls_cert", "tls_key", "tls_client_ca")


def _api(err: _Errors, value: Any) -> ApiConfig:
    d = _section(err, "api", value, ("socket", "tcp"))
    if d is None:
        return ApiConfig()
    sock = _path(err, "api.socket", d.get("socket"), DEFAULT_API_SOCKET) or DEFAULT_API_SOCKET
    tcp = None
    if d.get("tcp") is not None:
        # the API drains servers and purges pins: over TCP only with mutual TLS
        t = _section(err, "api.tcp", d["tcp"], TCP_KEYS, required=TCP_KEYS)
        if t is not None:
            address = _text(err, "api.tcp.address", t.get("address"), None)
            why = _host_port(address) if address else None
            if why:
                err.add("api.tcp.address", why)
            files = [_path(err, f"api.tcp.{k}", t.get(k), None) for k in TCP_KEYS[1:]]
            if address and not why and all(files):
                tcp = ApiTcp(address, *(f or "" for f in files))
    return ApiConfig(sock, tcp)


def _metrics(err: _Errors, value: Any) -> str | None:
    """No section (or ``metrics: null``): off. A section: on, at ``address`` or the default
    address; ``address: null`` turns it off again."""
    if value is None:
        return None
    d = _section(err, "metrics", value, ("address",))
    if d is None:
        return None
    if "address" in d and d["address"] is None:
        return None  # written out as null: no metrics listener
    address = _text(err, "metrics.address", d.get("address"), DEFAULT_METRICS_ADDRESS)
    why = _host_port(address) if address else None
    if why:
        err.add("metrics.address", why)
        return DEFAULT_METRICS_ADDRESS
    return address


def _log(err: _Errors, value: Any) -> LogConfig:
    d = _section(err, "log", value, ("format", "level")) or {}
    return LogConfig(
        format=_choice(err, "log.format", d.get("format"), LOG_FORMATS, "kv"),
        level=_choice(err, "log.level", d.get("level"), LOG_LEVELS, "info"),
    )


TOP_KEYS = ("vips", "linux", "mirror", "nexthops", "drain", "backend", "api", "metrics", "log")


def _cross_checks(err: _Errors, cfg: Config, at: list[int]) -> None:
    """Rules between sections (each error still names the key to change); ``at[i]`` is the
    index in the file of ``cfg.vips[i]``."""
    modes = cfg.modes()
    if cfg.mirror.egress == "query" and cfg.backend.type != "linux":
        err.add("mirror.egress", "query is the Linux backend's: on EOS set backend.eos.egress")
    # unless the sources (or the whole mirror section) were already wrong
    mirror_read = not err.under("mirror.sources") and not any(
        e.startswith("mirror: ") for e in err.items
    )
    if "mirror" in modes and not cfg.mirror.sources and mirror_read:
        err.add("mirror.sources", "required when a VIP uses mode mirror (or write [any])")
    if err.under("backend"):
        return  # which backend was meant is unknown: its rules would be guesses
    if cfg.drain.actuator == "eos" and not err.under("drain"):
        if cfg.backend.type != "eos":
            err.add("drain.actuator", "eos needs backend type eos (the switch to drain on)")
        if cfg.drain.bgp_asn is None:
            err.add("drain.bgp_asn", "required with actuator eos (the switch's router bgp)")
        if not cfg.drain.neighbors:
            err.add("drain.neighbors", "required with actuator eos (the server peers or groups)")
    if cfg.backend.type == "eos":
        for i, v in enumerate(cfg.vips):
            if v.mode == "kernel":
                err.add(
                    f"vips[{at[i]}].mode",
                    "kernel needs backend linux (EOS learns flows from mirrors)",
                )
    if cfg.mirror.record and "mirror" in modes:
        if cfg.backend.type == "eos":
            err.add("mirror.record", "needs backend linux (the record is a Linux router's)")
        elif cfg.linux.one_direction:
            err.add("mirror.record", "needs both directions (not with linux.one_direction)")
    if cfg.mirror.evict and "mirror" in modes:
        if cfg.backend.type == "eos":
            err.add("mirror.evict", "needs backend linux (EOS has its own pin table)")
        elif cfg.linux.one_direction:
            err.add("mirror.evict", "needs both directions (not with linux.one_direction)")
    for i, v in enumerate(cfg.vips):
        if "udp" not in v.protocols:
            continue
        if v.mode == "mirror":
            err.add(
                f"vips[{at[i]}].protocols",
                "udp needs mode kernel (mirror mode pins from mirrored TCP SYNs)",
            )
        elif cfg.linux.one_direction:
            err.add(
                f"vips[{at[i]}].protocols",
                "udp with linux.one_direction: one-direction pins follow TCP flags, udp "
                "pins need conntrack (a router that sees both directions)",
            )
    if cfg.backend.type != "eos" and len(modes) > 1:
        first = cfg.vips[0].mode
        i = next(i for i, v in enumerate(cfg.vips) if v.mode != first)
        err.add(
            f"vips[{at[i]}].mode",
            f"{cfg.vips[i].mode} with {first} (vips[{at[0]}]): the linux backend runs one mode "
            "per agent",
        )


def parse(data: Any, source: str = "<config>") -> Config:
    """A :class:`Config` from loaded YAML, or :class:`ConfigError` with every error."""
    err = _Errors()
    if data is None:
        raise ConfigError(["top level: the file is empty (vips is required)"], source)
    top = _section(err, "", data, TOP_KEYS, required=())
    if top is None:
        raise ConfigError(err.items, source)
    vips = _vips(err, top.get("vips"))
    linux = _linux(err, top.get("linux"))
    named = _nexthops(err, top.get("nexthops"))  # before mirror: sessions may use names
    nexthops = {name: addrs[0] for name, addrs in named.items()}
    cfg = Config(
        vips=tuple(v for _, v in vips),
        linux=linux,
        mirror=_mirror(err, top.get("mirror"), nexthops),
        nexthops=nexthops,
        nexthop_addresses=named,
        drain=_drain(err, top.get("drain")),
        backend=_backend(err, top.get("backend")),
        api=_api(err, top.get("api")),
        metrics_address=_metrics(err, top.get("metrics")),
        log=_log(err, top.get("log")),
    )
    _cross_checks(err, cfg, [i for i, _ in vips])
    if err.items:
        raise ConfigError(err.items, source)
    return cfg


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor`: merged keys may be overridden, that is the point
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if isinstance(key, list | dict):
            continue  # unhashable: the schema rejects it with its path
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path: str) -> Any:
    """The file's YAML, or ConfigError with one line: unreadable, or a syntax error's line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read: {why}"], path) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: {problem}"], path) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], path) from None


def load(path: str) -> Config:
    return parse(read_yaml(path), source=path)


# ── writing back (config show, round trips) ──────────────────────────────────────────────
def to_dict(cfg: Config) -> dict[str, Any]:
    """The effective config as plain YAML-able data; ``parse(to_dict(c)) == c``."""
    eos = cfg.backend.eos
    tcp = cfg.api.tcp
    lx = cfg.linux
    return {
        "vips": [
            {
                "prefix": str(v.prefix),
                "mode": v.mode,
                "name": v.name,
                "protocols": list(v.protocols),
            }
            for v in cfg.vips
        ],
        "backend": {
            "type": cfg.backend.type,
            **(
                {"eos": {**dataclasses.asdict(eos), "interfaces": list(eos.interfaces)}}
                if eos
                else {}
            ),
        },
        "linux": {**dataclasses.asdict(lx), "mark_mask": f"0x{lx.mark_mask:08x}"},
        "mirror": {
            "listen": list(cfg.mirror.listen),
            "sources": list(cfg.mirror.sources),
            "sessions": dict(cfg.mirror.sessions),
            "pin_timeout": cfg.mirror.pin_timeout,
            "pin_map_size": cfg.mirror.pin_map_size,
            "batch": dataclasses.asdict(cfg.mirror.batch),
            "synack": cfg.mirror.synack,
            "record": cfg.mirror.record,
            "evict": cfg.mirror.evict,
            "egress": cfg.mirror.egress,
        },
        "nexthops": {
            name: addrs[0] if len(addrs) == 1 else list(addrs)
            for name, addrs in cfg.nexthop_addresses.items()
        },
        "drain": {
            "actuator": cfg.drain.actuator,
            "vtysh": list(cfg.drain.vtysh),
            "prefix_lists": {"v4": cfg.drain.prefix_list_v4, "v6": cfg.drain.prefix_list_v6},
            "wait_timeout": cfg.drain.wait_timeout,
            "bgp_hostnames": cfg.drain.bgp_hostnames,
            "bgp_asn": cfg.drain.bgp_asn,
            "neighbors": list(cfg.drain.neighbors),
            "route_map": cfg.drain.route_map,
        },
        "api": {"socket": cfg.api.socket, "tcp": dataclasses.asdict(tcp) if tcp else None},
        "metrics": {"address": cfg.metrics_address},
        "log": dataclasses.asdict(cfg.log),
    }


def summary(cfg: Config) -> str:
    """One line for `config check`: what the agent would run."""
    modes = [v.mode for v in cfg.vips]
    counts = ", ".join(f"{modes.count(m)} {m}" for m in MODES if m in modes)
    parts = [
        f"{len(cfg.vips)} VIP{'s' * (len(cfg.vips) != 1)} ({counts})",
        f"backend {cfg.backend.type}",
    ]
    if "mirror" in modes:
        src = "any source" if cfg.mirror.any_source else f"{len(cfg.mirror.sources)} sources"
        parts.append(f"{len(cfg.mirror.sessions)} mirror sessions from {src}")
    parts.append(f"{len(cfg.nexthops)} named next hops")
    parts.append(f"drain {cfg.drain.actuator}")
    return ", ".join(parts)
