"""dfagent.yaml: every error with its exact path, all at once; defaults; the example; the CLI."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dfagent import config
from dfagent.config import ConfigError, load, parse, to_dict
from dfagent.core.marks import DEFAULT_MARK_MASK

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dfagent.yaml"
KERNEL_VIP = {"prefix": "192.0.2.10/32", "mode": "kernel"}
MIRROR_VIP = {"prefix": "192.0.2.10/32", "mode": "mirror"}


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return info.value.errors


def with_(section: str, body: Any, vips: list[Any] | None = None) -> dict[str, Any]:
    return {"vips": vips or [KERNEL_VIP], section: body}


# ── one error each, with its exact text ──────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"vipz": [], "vips": [KERNEL_VIP]},
         "unknown key 'vipz' at top level (did you mean 'vips'?)"),
        ({"vips": [KERNEL_VIP], "zzz": 1},
         "unknown key 'zzz' at top level (known: vips, linux, mirror, nexthops, drain, "
         "backend, api, metrics, log)"),
        (with_("linux", {"gc_grase": 3}),
         "unknown key 'gc_grase' at linux (did you mean 'gc_grace'?)"),
        ({"vips": [{**KERNEL_VIP, "prefx": "x"}]},
         "unknown key 'prefx' at vips[0] (did you mean 'prefix'?)"),
        (with_("mirror", {"batch": {"max_item": 3}}),
         "unknown key 'max_item' at mirror.batch (did you mean 'max_items'?)"),
        ({}, "vips: required: at least one VIP"),
        ({"vips": []}, "vips: at least one VIP"),
        ({"vips": "1.1.1.1/32"}, "vips: expected a list, got '1.1.1.1/32'"),
        ({"vips": ["1.1.1.1/32"]}, "vips[0]: expected a mapping, got '1.1.1.1/32'"),
        ({"vips": [{"mode": "kernel"}]}, "vips[0].prefix: required"),
        ({"vips": [{"prefix": "1.1.1.1/32"}]}, "vips[0].mode: required"),
        ({"vips": [{"prefix": "10.0.0.1/8", "mode": "kernel"}]},
         "vips[0].prefix: 10.0.0.1/8 has host bits set"),
        ({"vips": [{"prefix": "10.0.0.300/32", "mode": "kernel"}]},
         "vips[0].prefix: '10.0.0.300/32' does not appear to be an IPv4 or IPv6 network"),
        ({"vips": [{"prefix": 17, "mode": "kernel"}]},
         "vips[0].prefix: expected a prefix like 192.0.2.10/32, got 17"),
        ({"vips": [{"prefix": "1.1.1.1/32", "mode": "kernal"}]},
         "vips[0].mode: 'kernal' is not one of kernel | mirror (did you mean 'kernel'?)"),
        ({"vips": [{"prefix": "1.1.1.1/32", "mode": "map"}]},
         "vips[0].mode: 'map' is not one of kernel | mirror (map mode is mirror)"),
        ({"vips": [{**KERNEL_VIP, "protocols": ["tcp", "sctp"]}]},
         "vips[0].protocols[1]: 'sctp' is not supported: tcp or udp"),
        ({"vips": [{**KERNEL_VIP, "protocols": []}]},
         "vips[0].protocols: at least one protocol (tcp, udp)"),
        ({"vips": [{**MIRROR_VIP, "protocols": ["udp"]}], "mirror": {"sources": ["any"]}},
         "vips[0].protocols: udp needs mode kernel (mirror mode pins from mirrored TCP SYNs)"),
        ({"vips": [{**KERNEL_VIP, "protocols": ["udp"]}], "linux": {"one_direction": True}},
         "vips[0].protocols: udp with linux.one_direction: one-direction pins follow TCP "
         "flags, udp pins need conntrack (a router that sees both directions)"),
        ({"vips": [{**KERNEL_VIP, "name": "1web"}]},
         "vips[0].name: '1web' is not a name (a letter, then A-Z a-z 0-9 _ . -)"),
        ({"vips": [{**KERNEL_VIP, "name": "w"}, {"prefix": "10.9.0.0/16", "mode": "kernel",
                                                  "name": "w"}]},
         "vips[1].name: 'w' is already the name of vips[0]"),
        ({"vips": [{"prefix": "10.0.0.0/8", "mode": "kernel"},
                   {"prefix": "10.1.0.0/16", "mode": "kernel"}]},
         "vips[1].prefix: 10.1.0.0/16 overlaps vips[0].prefix 10.0.0.0/8: give the covering "
         "prefix once"),
        ({"vips": [KERNEL_VIP, {"prefix": "2001:db8::/64", "mode": "mirror"}],
          "mirror": {"sources": ["any"]}},
         "vips[1].mode: mirror with kernel (vips[0]): the linux backend runs one mode per agent"),
        (with_("linux", {"mark_mask": 0x0F0F0000}),
         "linux.mark_mask: 0x0f0f0000 is not one contiguous run of bits"),
        (with_("linux", {"mark_mask": "0x0f0f0000"}),
         "linux.mark_mask: 0x0f0f0000 is not one contiguous run of bits"),
        (with_("linux", {"mark_mask": "lots"}),
         "linux.mark_mask: 'lots' is not a number (write it like 0x0fff0000)"),
        (with_("linux", {"mark_mask": 0x00010000}),
         "linux.mark_mask: 0x00010000 has one bit: dfagent needs at least 2 (flag + index)"),
        (with_("linux", {"mark_mask": True}),
         "linux.mark_mask: expected a mask like 0x0fff0000, got true/false"),
        (with_("linux", {"gc_grace": 0}), "linux.gc_grace: must be more than 0 seconds, got 0"),
        (with_("linux", {"gc_grace": "5s"}),
         "linux.gc_grace: expected a number of seconds, got '5s'"),
        (with_("linux", {"fin_timeout": 2.5}),
         "linux.fin_timeout: expected a whole number of seconds, got 2.5"),
        (with_("linux", {"repair": "yes please"}),
         "linux.repair: expected true or false, got 'yes please'"),
        (with_("linux", {"notrack": True}),
         "linux.notrack: needs one_direction: true (otherwise the pins live in conntrack)"),
        (with_("linux", {"ct_copy": "off"}), "linux.ct_copy: expected true or false, got 'off'"),
        (with_("linux", {"syn_untracked": True, "one_direction": True}),
         "linux.syn_untracked: one-direction pins do not use conntrack"),
        (with_("linux", {"untrack_others": 1}),
         "linux.untrack_others: expected true or false, got 1"),
        (with_("linux", {"state_dir": "var/lib"}),
         "linux.state_dir: 'var/lib' is not an absolute path"),
        (with_("linux", [1]), "linux: expected a mapping, got a list"),
        ({"vips": [MIRROR_VIP]},
         "mirror.sources: required when a VIP uses mode mirror (or write [any])"),
        (with_("linux", {"gc_grace": 10**400}),
         "linux.gc_grace: must be at most 4294967295 seconds, got " + str(10**400)),
        (with_("linux", {"gc_grace": float("inf")}),
         "linux.gc_grace: must be at most 4294967295 seconds, got inf"),
        (with_("linux", {"gc_grace": float("nan")}),
         "linux.gc_grace: must be more than 0 seconds, got nan"),
        (with_("mirror", {"pin_map_size": 2**32}),
         "mirror.pin_map_size: must be at most 4294967295 flows, got 4294967296"),
        (with_("mirror", {"sources": "any"}), "mirror.sources: expected a list: write [any]"),
        (with_("mirror", {"sources": ["any", "10.0.0.1"]}),
         "mirror.sources[0]: `any` cannot be combined with addresses"),
        (with_("mirror", {"sources": ["10.0.0.300"]}),
         "mirror.sources[0]: '10.0.0.300' is not an IP address"),
        (with_("mirror", {"listen": ["any"]}), "mirror.listen[0]: 'any' is not an IP address"),
        (with_("mirror", {"sessions": {1: "foo"}}),
         "mirror.sessions.1: 'foo' is not an IP address or a name under nexthops"),
        (with_("mirror", {"sessions": {1: "fe80::1"}}),
         "mirror.sessions.1: fe80::1 is link-local: add %IFNAME"),
        (with_("mirror", {"sessions": {"x": "10.0.0.1"}}),
         "mirror.sessions.x: 'x' is not a session id (a whole number)"),
        (with_("mirror", {"sessions": {4294967296: "10.0.0.1"}}),
         "mirror.sessions.4294967296: session 4294967296 is more than 32 bits"),
        (with_("mirror", {"sessions": {1: "10.0.0.1", "1": "10.0.0.2"}}),
         "mirror.sessions.1: session 1 given twice"),
        (with_("mirror", {"sessions": [1]}),
         "mirror.sessions: expected a mapping of session id → next hop, got a list"),
        (with_("mirror", {"pin_map_size": -1}),
         "mirror.pin_map_size: must be more than 0 flows, got -1"),
        (with_("mirror", {"batch": {"max_delay_ms": 0}}),
         "mirror.batch.max_delay_ms: must be more than 0 milliseconds, got 0"),
        (with_("nexthops", {"s1": "foo"}), "nexthops.s1: 'foo' is not an IP address"),
        (with_("nexthops", {"s1": "%eth1"}),
         "nexthops.s1: '%eth1' has no address: write ADDR or ADDR%IFNAME (drain acts on "
         "addresses)"),
        (with_("nexthops", {"10.0.0.1": "10.0.0.1"}),
         "nexthops.10.0.0.1: '10.0.0.1' is not a name (a letter, then A-Z a-z 0-9 _ . -)"),
        (with_("nexthops", {"s1": "10.0.0.1", "s2": "10.0.0.1"}),
         "nexthops.s2: 10.0.0.1 is already named s1"),
        (with_("nexthops", {"s1": "127.0.0.1"}), "nexthops.s1: 127.0.0.1 cannot be a next hop"),
        (with_("drain", {"actuator": "bird"}),
         "drain.actuator: 'bird' is not one of frr | eos | none"),
        (with_("drain", {"vtysh": []}),
         "drain.vtysh: expected a command (text or a list of words), got a list"),
        (with_("drain", {"prefix_lists": {"v4": "MY LIST"}}),
         "drain.prefix_lists.v4: 'MY LIST': a prefix-list name has no spaces"),
        (with_("backend", {"type": "eso"}),
         "backend.type: 'eso' is not one of linux | eos (did you mean 'eos'?)"),
        (with_("backend", {"eos": {"profile": "x"}}),
         "backend.eos: only with type: eos (type is linux)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]}, "backend": {"type": "eos"}},
         "backend.eos: required when type is eos (profile, endpoint)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
          "backend": {"type": "eos", "eos": {"profile": "arista-7050x", "endpoint": "sw1",
                                             "password": "hunter2"}}},
         "backend.eos.password: secrets stay out of this file: put the password in an "
         "environment variable and name it in password_env"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
          "backend": {"type": "eos", "eos": {"profile": "arista-7050x"}}},
         "backend.eos.endpoint: required with transport https (HOST or HOST:PORT)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
          "backend": {"type": "eos", "eos": {"profile": "arista-ceos-lab", "transport": "socket",
                                             "endpoint": "sw1"}}},
         "backend.eos.endpoint: not with transport socket (the agent runs on the switch)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
          "backend": {"type": "eos", "eos": {"profile": "arista-ceos-lab", "endpoint": "sw1",
                                             "password_env": "MY-PASS"}}},
         "backend.eos.password_env: 'MY-PASS' is not an environment variable name"),
        ({"vips": [KERNEL_VIP],
          "backend": {"type": "eos", "eos": {"profile": "arista-ceos-lab", "endpoint": "sw1"}}},
         "vips[0].mode: kernel needs backend linux (EOS learns flows from mirrors)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"], "egress": "queried"}},
         "mirror.egress: 'queried' is not one of observed | query (did you mean 'query'?)"),
        ({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"], "egress": "query"},
          "backend": {"type": "eos", "eos": {"profile": "arista-7050x", "endpoint": "sw1"}}},
         "mirror.egress: query is the Linux backend's: on EOS set backend.eos.egress"),
        (with_("api", {"socket": "dfagent.sock"}),
         "api.socket: 'dfagent.sock' is not an absolute path"),
        (with_("api", {"tcp": {"address": "0.0.0.0:9643", "tls_cert": "/c", "tls_key": "/k"}}),
         "api.tcp.tls_client_ca: required"),
        (with_("api", {"tcp": {"address": "::1:9643", "tls_cert": "/c", "tls_key": "/k",
                               "tls_client_ca": "/ca"}}),
         "api.tcp.address: '::1:9643': write an IPv6 address in brackets, [::1]:9643"),
        (with_("metrics", {"address": "127.0.0.1"}),
         "metrics.address: '127.0.0.1' is not HOST:PORT"),
        (with_("metrics", {"address": "127.0.0.1:99999"}),
         "metrics.address: '127.0.0.1:99999': '99999' is not a port (1-65535)"),
        (with_("log", {"format": "text"}), "log.format: 'text' is not one of kv | json"),
        (with_("log", {"level": False}),
         "log.level: False is not one of debug | info | warning | error"),
        (None, "top level: the file is empty (vips is required)"),
        ([1, 2], "top level: expected a mapping, got a list"),
    ],
)  # fmt: skip
def test_each_error_names_its_path(data: Any, error: str) -> None:
    assert errors_of(data) == [error]


def test_every_error_is_reported_at_once_in_schema_order() -> None:
    data = {
        "vipz": 1,
        "vips": [
            {"prefix": "10.0.0.1/8", "mode": "kernel"},
            {"prefix": "1.0.0.0/8", "mode": "mirror"},
            {"prefix": "1.1.0.0/16", "mode": "mirror", "prefx": 3},
        ],
        "linux": {"mark_mask": "0x0f0f0000", "gc_grase": 3, "dead_hold": -1},
        "nexthops": {"s1": "foo"},
        "log": {"level": "loud"},
    }
    assert errors_of(data) == [
        "unknown key 'vipz' at top level (did you mean 'vips'?)",
        "vips[0].prefix: 10.0.0.1/8 has host bits set",
        "unknown key 'prefx' at vips[2] (did you mean 'prefix'?)",
        "vips[2].prefix: 1.1.0.0/16 overlaps vips[1].prefix 1.0.0.0/8: give the covering "
        "prefix once",
        "unknown key 'gc_grase' at linux (did you mean 'gc_grace'?)",
        "linux.mark_mask: 0x0f0f0000 is not one contiguous run of bits",
        "linux.dead_hold: must be more than 0 seconds, got -1",
        "nexthops.s1: 'foo' is not an IP address",
        "log.level: 'loud' is not one of debug | info | warning | error",
        "mirror.sources: required when a VIP uses mode mirror (or write [any])",
    ]


def test_missing_sources_are_reported_beside_other_mirror_errors() -> None:
    assert errors_of({"vips": [MIRROR_VIP], "mirror": {"sessions": {1: "foo"}}}) == [
        "mirror.sessions.1: 'foo' is not an IP address or a name under nexthops",
        "mirror.sources: required when a VIP uses mode mirror (or write [any])",
    ]
    # but not again when the sources themselves (or the section) are what is wrong
    assert errors_of({"vips": [MIRROR_VIP], "mirror": {"sources": ["x"]}}) == [
        "mirror.sources[0]: 'x' is not an IP address"
    ]
    assert errors_of({"vips": [MIRROR_VIP], "mirror": "on"}) == [
        "mirror: expected a mapping, got 'on'"
    ]


def test_the_error_message_holds_source_and_every_error() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/x.yaml: vips: required.*; log.format"):
        parse({"log": {"format": "xml"}}, source="/etc/x.yaml")


# ── defaults ─────────────────────────────────────────────────────────────────────────────
def test_defaults_fill_everything_but_the_vips() -> None:
    cfg = parse({"vips": [KERNEL_VIP]})
    assert cfg.vips == (config.Vip(ipaddress.ip_network("192.0.2.10/32"), "kernel"),)
    assert cfg.vips[0].protocols == ("tcp",) and cfg.vips[0].name is None
    lx = cfg.linux
    assert (lx.state_dir, lx.nft_include, lx.mark_mask) == (None, None, DEFAULT_MARK_MASK)
    timings = (lx.reconcile_interval, lx.gc_grace, lx.dead_hold, lx.fin_timeout)
    assert timings == (5.0, 5.0, 30.0, 30)
    assert lx.repair and not (lx.allow_mark_overlap or lx.one_direction or lx.notrack)
    assert not lx.ct_copy  # opt-in: its cost grows with the pins (docs/kernel-mode.md)
    m = cfg.mirror
    assert (m.listen, m.sources, dict(m.sessions)) == ((), (), {})  # closed by default
    assert (m.pin_timeout, m.pin_map_size, m.batch.max_items, m.batch.max_delay_ms) == (
        300, 2_000_000, 256, 2.0,
    )  # fmt: skip
    assert cfg.drain == config.DrainConfig("frr", ("vtysh",), "DRAIN4", "DRAIN6", 600.0, True)
    assert cfg.backend == config.BackendConfig("linux", None)
    assert cfg.api == config.ApiConfig("/run/dfagent/dfagent.sock", None)
    assert cfg.metrics_address is None  # no port opened unless asked
    assert cfg.log == config.LogConfig("kv", "info")


def test_the_cli_and_the_datapath_use_the_same_defaults() -> None:
    """Written once: the Linux CLI options and DatapathConfig carry dfagent.config's values."""
    import click

    from dfagent.backends.linux.datapath import DatapathConfig
    from dfagent.cli.linux import linux

    dp = DatapathConfig(())
    lx, m = config.LinuxConfig(), config.MirrorConfig()
    assert (dp.reconcile_interval, dp.gc_grace, dp.dead_hold, dp.fin_timeout) == (
        lx.reconcile_interval, lx.gc_grace, lx.dead_hold, lx.fin_timeout,
    )  # fmt: skip
    assert (dp.pin_timeout, dp.pin_map_size, dp.space.mask) == (
        m.pin_timeout, m.pin_map_size, lx.mark_mask,
    )  # fmt: skip
    assert dp.state_dir == config.DEFAULT_STATE_DIR

    def default(cmd: str, opt: str) -> Any:
        p = next(p for p in linux.commands[cmd].params if isinstance(p, click.Option)
                 and opt in p.opts)  # fmt: skip
        return p.default

    assert default("kernel", "--reconcile-interval") == lx.reconcile_interval
    assert default("kernel", "--gc-grace") == lx.gc_grace
    assert default("kernel", "--dead-hold") == lx.dead_hold
    assert default("kernel", "--fin-timeout") == lx.fin_timeout
    assert default("kernel", "--mark-mask") == f"0x{lx.mark_mask:08x}"
    assert default("map", "--size") == m.pin_map_size
    assert default("map", "--timeout") == m.pin_timeout
    assert default("map", "--max-items") == m.batch.max_items
    assert default("map", "--max-delay-ms") == m.batch.max_delay_ms


def test_null_metrics_address_turns_metrics_off() -> None:
    assert parse(with_("metrics", {"address": None})).metrics_address is None
    assert parse(with_("metrics", None)).metrics_address is None
    assert parse(with_("metrics", {})).metrics_address == "127.0.0.1:9642"
    assert parse(with_("metrics", {"address": "[::1]:9100"})).metrics_address == "[::1]:9100"


def test_names_resolve_in_sessions_and_any_is_explicit() -> None:
    cfg = parse({
        "vips": [MIRROR_VIP],
        "nexthops": {"s1": "10.98.1.2", "s3": "fe80::3%eth3"},
        "mirror": {"sources": ["any"], "sessions": {1: "s1", "2": "10.98.2.2%eth2", 3: "s3"}},
    })  # fmt: skip
    assert cfg.mirror.any_source
    assert dict(cfg.mirror.sessions) == {1: "s1", 2: "10.98.2.2%eth2", 3: "s3"}
    assert [cfg.session_nexthop(s) for s in (1, 2, 3, 4)] == [
        "10.98.1.2", "10.98.2.2%eth2", "fe80::3%eth3", None,
    ]  # fmt: skip


def test_a_session_naming_a_server_with_v4_and_v6_gives_both_families() -> None:
    cfg = parse({
        "vips": [MIRROR_VIP],
        "nexthops": {"s1": ["10.98.1.2", "fd00:98:1::2"], "s2": "10.98.2.2"},
        "mirror": {"sources": ["any"], "sessions": {1: "s1", 2: "s2", 3: "10.98.3.2"}},
    })  # fmt: skip
    assert cfg.session_families(1) == {4: "10.98.1.2", 6: "fd00:98:1::2"}
    assert cfg.session_families(2) == cfg.session_families(3) == cfg.session_families(9) == {}


def test_vtysh_as_text_is_split_like_a_shell() -> None:
    cfg = parse(with_("drain", {"vtysh": "ip netns exec lb vtysh --vty_socket '/run/a b'"}))
    assert cfg.drain.vtysh == ("ip", "netns", "exec", "lb", "vtysh", "--vty_socket", "/run/a b")


def test_eos_backend_with_mirror_vips() -> None:
    cfg = parse({
        "vips": [MIRROR_VIP],
        "mirror": {"sources": ["10.99.0.1"]},
        "backend": {"type": "eos", "eos": {"profile": "arista-7050x", "endpoint": "sw1:443",
                                           "password_env": "DFAGENT_EAPI_PASSWORD"}},
    })  # fmt: skip
    assert cfg.backend.eos == config.EosConfig(
        "arista-7050x", "sw1:443", "https", "admin", "DFAGENT_EAPI_PASSWORD", True
    )


def test_api_over_tcp_needs_mutual_tls() -> None:
    tcp = {"address": "[2001:db8::1]:9643", "tls_cert": "/c", "tls_key": "/k"}
    tcp["tls_client_ca"] = "/ca"
    assert parse(with_("api", {"tcp": tcp})).api.tcp == config.ApiTcp(
        "[2001:db8::1]:9643", "/c", "/k", "/ca"
    )
    assert errors_of(with_("api", {"tcp": {"address": "0.0.0.0"}})) == [
        "api.tcp.tls_cert: required",
        "api.tcp.tls_key: required",
        "api.tcp.tls_client_ca: required",
        "api.tcp.address: '0.0.0.0' is not HOST:PORT",
    ]


# ── the example and round trips ──────────────────────────────────────────────────────────
def test_the_example_loads_with_the_values_it_documents() -> None:
    cfg = load(str(EXAMPLE))
    assert [(str(v.prefix), v.mode, v.name) for v in cfg.vips] == [
        ("192.0.2.10/32", "kernel", "web"), ("2001:db8::10/128", "kernel", "web6"),
    ]  # fmt: skip
    assert cfg.linux == config.LinuxConfig(
        state_dir="/var/lib/dfagent", nft_include="/var/lib/dfagent/dfagent.nft"
    )  # every other value it writes is the default, as its comments say
    assert cfg.mirror.sources == ("10.99.0.1", "10.99.0.2")
    assert dict(cfg.mirror.sessions) == {1: "s1", 2: "10.98.2.2%eth2", 3: "%eth3"}
    assert cfg.session_nexthop(1) == "10.98.1.2"
    assert (cfg.mirror.pin_timeout, cfg.mirror.pin_map_size) == (300, 2_000_000)
    assert dict(cfg.nexthops) == {"s1": "10.98.1.2", "s2": "10.98.2.2", "s3": "fe80::3%eth3"}
    assert cfg.drain == config.DrainConfig()
    assert cfg.backend.type == "linux" and cfg.api == config.ApiConfig()
    assert cfg.metrics_address == "127.0.0.1:9642" and cfg.log == config.LogConfig()


def test_the_example_is_in_the_docs() -> None:
    docs = (EXAMPLE.parents[1] / "docs" / "config.md").read_text()
    assert EXAMPLE.read_text().strip() in docs


def test_show_round_trips() -> None:
    cfg = load(str(EXAMPLE))
    assert parse(yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg
    full = parse({
        "vips": [{**MIRROR_VIP, "name": "w", "protocols": ["tcp"]}],
        "linux": {"mark_mask": 0xF0, "one_direction": True, "notrack": True, "ct_copy": True},
        "mirror": {"sources": ["any"], "listen": ["10.0.0.1"], "sessions": {7: "%eth1"}},
        "backend": {"type": "eos", "eos": {"profile": "arista-ceos-lab", "transport": "socket",
                                           "verify_tls": False}},
        "api": {"tcp": {"address": "h:1", "tls_cert": "/c", "tls_key": "/k",
                        "tls_client_ca": "/ca"}},
        "metrics": {"address": None},
        "log": {"format": "json", "level": "debug"},
    })  # fmt: skip
    assert parse(json.loads(json.dumps(to_dict(full)))) == full


def test_parse_does_not_change_its_input() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    before = copy.deepcopy(data)
    parse(data)
    assert data == before


# ── reading files ────────────────────────────────────────────────────────────────────────
def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("vips: []\nlinux:\n  gc_grace: 1\n  gc_grace: 2\n")
    with pytest.raises(ConfigError) as info:
        load(str(f))
    assert info.value.errors == ["line 4, column 3: duplicate key 'gc_grace' (first on line 3)"]


def test_merge_keys_work_and_may_override(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "vips:\n  - &web {prefix: 192.0.2.10/32, mode: kernel, name: web}\n"
        "  - <<: *web\n    prefix: 192.0.2.11/32\n    name: web2\n"
    )
    assert [(str(v.prefix), v.mode, v.name) for v in load(str(f)).vips] == [
        ("192.0.2.10/32", "kernel", "web"), ("192.0.2.11/32", "kernel", "web2"),
    ]  # fmt: skip


def test_yaml_syntax_error_is_one_line_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("vips:\n  - prefix: 1.1.1.1/32\n   mode: kernel\n")
    with pytest.raises(ConfigError) as info:
        load(str(f))
    assert len(info.value.errors) == 1 and info.value.errors[0].startswith("line 3, column 4: ")


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "missing.yaml"))
    assert info.value.errors == ["cannot read: No such file or directory"]
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "bin.yaml"))


def test_python_objects_in_yaml_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("vips: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="line 1, column 7: could not determine a constructor"):
        load(str(f))


# ── the CLI ──────────────────────────────────────────────────────────────────────────────
def run(*args: str) -> tuple[int, str, str]:
    from dfagent.cli.main import cli

    res = CliRunner().invoke(cli, ["config", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def test_check_a_good_file() -> None:
    code, out, err = run("check", str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out == (
        f"{EXAMPLE}: valid: 2 VIPs (2 kernel), backend linux, 3 named next hops, drain frr\n"
    )
    code, out, _ = run("check", "--json", str(EXAMPLE))
    assert code == 0 and json.loads(out)["valid"] is True


def test_check_a_bad_file_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "vipz: []\nvips:\n  - {prefix: 10.0.0.1/8, mode: kernel}\n"
        "linux: {mark_mask: 0x0f0f0000}\nnexthops: {s1: foo}\n"
    )
    code, out, err = run("check", str(f))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{f}: unknown key 'vipz' at top level (did you mean 'vips'?)",
        f"{f}: vips[0].prefix: 10.0.0.1/8 has host bits set",
        f"{f}: linux.mark_mask: 0x0f0f0000 is not one contiguous run of bits",
        f"{f}: nexthops.s1: 'foo' is not an IP address",
        f"{f}: 4 errors",
    ]
    code, out, _ = run("check", "--json", str(f))
    got = json.loads(out)
    assert code == 2 and got["valid"] is False and len(got["errors"]) == 4


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (None, "cannot read: No such file or directory"),
        (
            "vips:\n  - prefix: 1.1.1.1/32\n   mode: kernel\n",
            "line 3, column 4: expected <block end>",
        ),
        ("", "top level: the file is empty (vips is required)"),
    ],
)
def test_check_unreadable_or_broken_yaml_is_one_line(
    tmp_path: Path, text: str | None, line: str
) -> None:
    f = tmp_path / "c.yaml"
    if text is not None:
        f.write_text(text)
    code, out, err = run("check", str(f))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"{f}: {line}"), err
    assert "Traceback" not in err


def test_show_prints_the_effective_config() -> None:
    code, out, _ = run("show", str(EXAMPLE))
    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["linux"]["gc_grace"] == 5.0 and shown["linux"]["mark_mask"] == "0x0fff0000"
    assert shown["api"] == {"socket": "/run/dfagent/dfagent.sock", "tcp": None}
    assert parse(shown) == load(str(EXAMPLE))
    code, out, _ = run("show", "--json", str(EXAMPLE))
    assert code == 0 and json.loads(out)["mirror"]["sessions"] == {"1": "s1", "2": "10.98.2.2%eth2",
                                                                   "3": "%eth3"}  # fmt: skip


def test_show_of_a_bad_file_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("vips: [{prefix: 1.1.1.1/32}]\n")
    assert run("show", str(f))[:2] == (2, "")


# ── fuzz: nothing but ConfigError ever comes out ─────────────────────────────────────────
KEYS = st.sampled_from(
    [*config.TOP_KEYS, *config.VIP_KEYS, *config.LINUX_KEYS, *config.MIRROR_KEYS,
     *config.DRAIN_KEYS, *config.EOS_KEYS, *config.TCP_KEYS, "type", "eos", "socket", "tcp",
     "address", "format", "level", "max_items", "max_delay_ms", "v4", "v6", "s1", "any"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["1.1.1.1/32", "10.0.0.1/8", "kernel", "mirror", "any", "0x0fff0000",
                     "fe80::1%eth0", "%eth1", "::1:80", "[::1]:80", "s1", "eos", "socket",
                     "/abs", "²"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(KEYS | st.integers() | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a loaded YAML document a value sits (mapping keys and list indexes)."""
    out = [prefix]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out += _paths(v, (*prefix, k))
    return out


# random data alone rarely reaches deep keys: also mutate the example, a few places at a time
FULL = to_dict(parse({
    "vips": [MIRROR_VIP], "nexthops": {"s1": "10.0.0.1"},
    "mirror": {"sources": ["any"], "sessions": {1: "s1"}},
    "backend": {"type": "eos", "eos": {"profile": "arista-ceos-lab", "endpoint": "sw1"}},
    "api": {"tcp": {"address": "h:1", "tls_cert": "/c", "tls_key": "/k", "tls_client_ca": "/a"}},
}))  # fmt: skip
BASES = [yaml.safe_load(EXAMPLE.read_text()), FULL]


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent[draw(KEYS | st.integers())] = draw(VALUES)  # an extra or replaced key
        else:
            parent[path[-1]] = draw(VALUES)
    return doc


@pytest.mark.fuzz
@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=9) | VALUES | mutated_configs())
def test_random_input_is_a_config_or_a_config_error(data: Any) -> None:
    try:
        cfg = parse(data)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
    else:
        assert parse(to_dict(cfg)) == cfg


def test_a_name_may_stand_for_a_servers_v4_and_v6_next_hops() -> None:
    cfg = parse(
        {
            "vips": [{"prefix": "1.1.1.1/32", "mode": "kernel"}],
            "nexthops": {"s1": ["10.2.1.2", "fd00:2:1::2"], "s2": "10.2.2.2"},
        }
    )
    assert cfg.nexthop_addresses == {"s1": ("10.2.1.2", "fd00:2:1::2"), "s2": ("10.2.2.2",)}
    assert cfg.nexthops == {"s1": "10.2.1.2", "s2": "10.2.2.2"}
    assert parse(to_dict(cfg)) == cfg
    with pytest.raises(ConfigError) as exc:
        parse(
            {
                "vips": [{"prefix": "1.1.1.1/32", "mode": "kernel"}],
                "nexthops": {"s1": ["10.2.1.2", "bogus"], "s2": ["10.2.1.2"]},
            }
        )
    assert exc.value.errors == [
        "nexthops.s1[1]: 'bogus' is not an IP address",
        "nexthops.s2[0]: 10.2.1.2 is already named s1",
    ]


def test_eos_backend_keys_report_every_error_with_its_path() -> None:
    eos = {"profile": "arista-7050x", "endpoint": "sw1 2", "flow_prefix": "dfa-s1",
           "socket_path": "/run/x.sock", "rate_limit": 0, "priority": 70000,
           "interfaces": ["Ethernet1", "Eth 2"], "max_flows": 1.5, "name": "1sw"}  # fmt: skip
    data = {"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
            "backend": {"type": "eos", "eos": eos}}  # fmt: skip
    assert sorted(errors_of(data)) == sorted([
        "backend.eos.endpoint: 'sw1 2' is not HOST or HOST:PORT",
        "backend.eos.flow_prefix: 'dfa-s1' is not a flow-name prefix (a letter, then up to 23 "
        "of A-Z a-z 0-9 _; no '-', which separates the name's fields)",
        "backend.eos.socket_path: only with transport socket (transport is https)",
        "backend.eos.name: '1sw' is not a name (a letter, then A-Z a-z 0-9 _ . -)",
        "backend.eos.max_flows: expected a whole number of flows, got 1.5",
        "backend.eos.rate_limit: must be more than 0 pins per second, got 0",
        "backend.eos.priority: expected a priority 0-65535, got 70000",
        "backend.eos.interfaces[1]: expected an interface name, got 'Eth 2'",
    ])  # fmt: skip
    good = {**data, "backend": {"type": "eos", "eos": {"profile": "arista-7050x",
                                                       "endpoint": "sw1"}},
            "drain": {"actuator": "eos", "neighbors": []}}  # fmt: skip
    assert errors_of(good) == [
        "drain.bgp_asn: required with actuator eos (the switch's router bgp)",
        "drain.neighbors: required with actuator eos (the server peers or groups)",
    ]
    linux = {"vips": [KERNEL_VIP], "drain": {"actuator": "eos", "bgp_asn": 65000,
                                              "neighbors": ["SERVERS"]}}  # fmt: skip
    assert errors_of(linux) == [
        "drain.actuator: eos needs backend type eos (the switch to drain on)"
    ]


def test_eos_defaults_name_the_switch_and_the_agent() -> None:
    cfg = parse({"vips": [MIRROR_VIP], "mirror": {"sources": ["any"]},
                 "backend": {"type": "eos", "eos": {"profile": "arista-7050x",
                                                    "endpoint": "[2001:db8::1]:443"}}})  # fmt: skip
    eos = cfg.backend.eos
    assert eos is not None and eos.switch_name() == "2001:db8::1"
    assert eos.prefix().startswith("dfa_") and "-" not in eos.prefix()
    assert (eos.timeout, eos.reconcile_interval, eos.rate_limit, eos.priority) == (
        10.0, 10.0, 2000, 100,
    )  # fmt: skip
    assert parse(yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_the_eos_example_loads() -> None:
    cfg = load(str(EXAMPLE.parent / "dfagent-eos.yaml"))
    eos = cfg.backend.eos
    assert eos is not None and (eos.profile, eos.prefix(), eos.max_flows) == (
        "arista-7050x", "dfa_s1", 375,
    )  # fmt: skip
    assert (cfg.drain.actuator, cfg.drain.bgp_asn, cfg.drain.neighbors) == (
        "eos", 65000, ("SERVERS",),
    )  # fmt: skip


def test_udp_on_a_kernel_vip_loads_and_cli_protocols_parse():
    from dfagent.config import vip_protocols
    from dfagent.core.nexthops import parse_vip

    cfg = parse({"vips": [{**KERNEL_VIP, "protocols": ["udp", "tcp", "udp"]}]})
    assert cfg.vips[0].protocols == ("udp", "tcp")
    v4, v6 = parse_vip("1.1.1.1/32"), parse_vip("2001:db8::1/128")
    assert vip_protocols([], (v4, v6)) == ()
    assert vip_protocols(["tcp,udp"], (v4, v6)) == ((v4, ("tcp", "udp")), (v6, ("tcp", "udp")))
    assert vip_protocols(["2001:db8::1/128=udp"], (v4, v6)) == ((v6, ("udp",)),)
    for bad, msg in (
        ("tcp,sctp", "'tcp,sctp': sctp is not tcp or udp"),
        ("9.9.9.9/32=udp", "'9.9.9.9/32=udp': 9.9.9.9/32 is not one of the --vip prefixes"),
        ("1.1.1.1/33=udp", "'1.1.1.1/33=udp': "),
    ):
        with pytest.raises(ValueError) as info:
            vip_protocols([bad], (v4, v6))
        assert str(info.value).startswith(msg)
