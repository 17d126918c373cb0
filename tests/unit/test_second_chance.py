"""The map mode's second chance without root: mirrored SYN-ACKs decoded (the reference
decoder), received (fake sockets) and turned into the client's flow by the egress resolver."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from dfagent.config import ConfigError, parse
from dfagent.core.egress import SYNACK_PINNED, SYNACK_SEEN, EgressResolver
from dfagent.lab.mirror_sender import TCP_ACK, TCP_SYN, mirrored_syn
from dfagent.wire import (
    SKIP_NOT_SYN,
    DecodeError,
    SynAckEvent,
    SynEvent,
    decode_mirror,
    decode_slow,
    decode_synack,
    decode_synack_gre,
)
from tests.unit.test_mirror_receiver import FakeSock, rx_with

SYNACK = TCP_SYN | TCP_ACK


def answer(src: str = "1.1.1.1", dst: str = "10.0.0.2", sport: int = 80, dport: int = 40000,
           flags: int = SYNACK, session: int = 3, outer: bool = True,
           mirror: str = "5.5.5.5") -> bytes:  # fmt: skip
    """A server's SYN-ACK (VIP → client), mirrored by the member's session."""
    return mirrored_syn(
        "erspan2", mirror, "9.9.9.9", src, dst, sport, dport, flags=flags, session=session,
        outer=outer,
    )  # fmt: skip


@pytest.mark.parametrize(("vip", "client"), [("1.1.1.1", "10.0.0.2"), ("2001:db8::1", "fd00::2")])
def test_synack_decodes_to_the_clients_flow(vip: str, client: str) -> None:
    buf = answer(vip, client)
    assert decode_mirror(buf) is SKIP_NOT_SYN  # the SYN decoder is unchanged
    ev = decode_synack(buf)
    assert isinstance(ev, SynAckEvent) and ev.session == 3
    assert (ev.src, ev.dst, ev.sport, ev.dport) == (vip, client, 80, 40000)
    assert ev.flow() == (client, vip, 40000, 80)
    gre = answer(vip, client, outer=False, mirror="2001:db8::5")
    assert decode_synack_gre(gre, bytes(16)) == ev._replace(mirror_addr=bytes(16))


@pytest.mark.parametrize("flags", [TCP_SYN, TCP_ACK, TCP_ACK | 0x01, 0x04])
def test_synack_decoder_skips_everything_else(flags: int) -> None:
    assert decode_synack(answer(flags=flags)) is SKIP_NOT_SYN


def test_synack_decoder_raises_only_decode_errors_on_truncation() -> None:
    buf = answer()
    for cut in range(len(buf)):
        try:
            r = decode_synack(buf[:cut])
        except DecodeError:
            continue
        assert r.__class__ is not SynEvent


def test_receiver_queues_synacks_only_when_asked() -> None:
    packets = [answer(), answer(flags=TCP_ACK), answer()[:60]]
    off = rx_with(list(packets))
    assert off.drain() == [] and off.counters["skip:not-syn"] == 2
    on = rx_with(list(packets), synack=True)
    events = on.drain()
    assert [type(e) for e in events] == [SynAckEvent]
    c = on.counters
    assert (c["synack"], c["skip:not-syn"], c["syn"]) == (1, 1, 0)
    assert sum(v for k, v in c.items() if k.startswith("error:")) == 1  # the cut one
    # over IPv6 (the raw socket hands the packet from GRE on)
    v6 = rx_with([], [answer(outer=False, mirror="2001:db8::5")], synack=True)
    v6.sock4 = FakeSock([])
    got = v6.drain()
    assert [e.flow() for e in got if isinstance(e, SynAckEvent)] == [
        ("10.0.0.2", "1.1.1.1", 40000, 80)
    ]
    assert len(got) == 1


def ack(**kw: Any) -> SynAckEvent:
    """A decoded SYN-ACK (see `answer`)."""
    ev = decode_synack(answer(**kw))
    assert isinstance(ev, SynAckEvent)
    return ev


def syn(sport: int, session: int = 1) -> SynEvent:
    """A decoded mirrored SYN of the client 10.0.0.2 to the VIP 1.1.1.1:80."""
    buf = mirrored_syn(
        "erspan2", "5.5.5.5", "9.9.9.9", "10.0.0.2", "1.1.1.1", sport, 80, session=session
    )
    ev = decode_mirror(buf)
    assert isinstance(ev, SynEvent)
    return ev


def resolver(**kw: object) -> EgressResolver:
    from ipaddress import ip_network

    vips = (ip_network("1.1.1.1/32"),)
    return EgressResolver({1: "10.2.1.2", 3: "10.2.3.2"}, vips=vips, **kw)  # type: ignore[arg-type]


def test_a_synack_pins_the_reversed_flow_to_its_sessions_member() -> None:
    eg = resolver(second_chance=True)
    lost = ack(dport=40001)  # its SYN never came
    seen = ack(dport=40002, session=1)
    other = ack(src="8.8.8.8")  # not from a VIP
    assert eg.pin_items([syn(40002), lost, seen, other]) == [
        ("10.0.0.2", "1.1.1.1", 40002, 80, "10.2.1.2"),
        ("10.0.0.2", "1.1.1.1", 40001, 80, "10.2.3.2"),
    ]
    assert eg.counters == {SYNACK_PINNED: 1, SYNACK_SEEN: 1, "drop:not-vip": 1}


def test_a_syn_that_did_not_pin_leaves_its_synack_to_pin() -> None:
    eg = resolver(second_chance=True)
    assert eg.pin_items([syn(40005, session=9)]) == [] and eg.unknown == 1
    got = eg.pin_items([ack(dport=40005)])
    assert got == [("10.0.0.2", "1.1.1.1", 40005, 80, "10.2.3.2")]


def test_recent_syns_are_bounded() -> None:
    eg = resolver(second_chance=True, recent_max=2)
    eg.pin_items([syn(40000 + i) for i in range(3)])
    assert len(eg.recent) == 2
    # the oldest was forgotten: its SYN-ACK is written again (same next hop: harmless)
    assert len(eg.pin_items([ack(dport=40000, session=1)])) == 1
    assert eg.pin_items([ack(dport=40002, session=1)]) == []


def test_config_mirror_synack() -> None:
    vips = [{"prefix": "1.1.1.1/32", "mode": "mirror"}]
    base = {"vips": vips, "mirror": {"sources": ["5.5.5.5"]}}
    assert parse(base).mirror.synack is False
    on = parse({**base, "mirror": {"sources": ["5.5.5.5"], "synack": True}})
    assert on.mirror.synack is True
    with pytest.raises(ConfigError, match=r"mirror\.synack.*expected true or false"):
        parse({**base, "mirror": {"sources": ["5.5.5.5"], "synack": 1}})


def test_linux_map_synack_needs_sessions() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "dfagent.cli.main", "linux", "map", "--vip", "1.1.1.1/32",
         "--synack"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and "--synack needs --nexthop-map" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "120"], "'120' is not a percentage from 0 to 100"),
        (["--loss", "5,x"], "'x' is not a percentage"),
        (["--modes", "map,bogus"], "unknown mode(s) bogus"),
        (["-n", "0"], "must be more than 0"),
    ],
)
def test_bench_mirrorloss_rejects_bad_input(args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "dfagent.cli.main", "bench", "mirrorloss", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def _outcome(f: object, *args: object) -> object:
    try:
        return f(*args)  # type: ignore[operator]
    except DecodeError as err:
        return repr(err)


@pytest.mark.parametrize("encap", ["erspan1", "erspan2", "erspan3", "teb", "ip"])
@pytest.mark.parametrize("vlans", [(), (100,), (100, 200)])
@pytest.mark.parametrize(("vip", "client"), [("1.1.1.1", "10.0.0.2"), ("2001:db8::1", "fd00::2")])
@pytest.mark.parametrize("mirror", ["5.5.5.5", "2001:db8::5"])
def test_synack_fast_path_agrees_with_the_reference(
    encap: str, vlans: tuple[int, ...], vip: str, client: str, mirror: str
) -> None:
    if encap == "ip" and vlans:
        return  # bare IP carries no tags
    buf = mirrored_syn(encap, mirror, "9.9.9.9" if ":" not in mirror else "2001:db8::9", vip,  # type: ignore[arg-type]
                       client, 80, 40000, flags=SYNACK, session=4, key=7, vlans=vlans)  # fmt: skip
    ev = decode_synack(buf)
    assert isinstance(ev, SynAckEvent) and ev.flow() == (client, vip, 40000, 80)
    assert ev == decode_slow(buf, SYNACK)
    # every truncation: the same answer, or the same error, as the reference
    for cut in range(len(buf)):
        assert _outcome(decode_synack, buf[:cut]) == _outcome(decode_slow, buf[:cut], SYNACK)


def test_linux_map_record_needs_both_directions() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "dfagent.cli.main", "linux", "map", "--vip", "1.1.1.1/32",
         "--record", "--one-direction"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and "--record needs both directions" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_config_reload_turns_the_second_chance_on_and_off() -> None:
    from types import SimpleNamespace

    from dfagent.agent.metrics import Metrics
    from dfagent.agent.mirror import MirrorFeed, MirrorPath
    from dfagent.mirror.receiver import MirrorReceiver

    agent: Any = SimpleNamespace(metrics=Metrics(mode="map"))
    rx = MirrorReceiver(["5.5.5.5"])  # never opened: apply() only sets what it reads
    path = MirrorPath(rx, MirrorFeed(agent, rx, resolver()), threading.Event())
    vips = [{"prefix": "1.1.1.1/32", "mode": "mirror"}]
    for on in (True, False):
        path.apply(parse({"vips": vips, "mirror": {"sources": ["5.5.5.5"], "synack": on}}))
        assert rx.synack is on and path.feed.egress.second_chance is on


def test_config_mirror_record_is_the_linux_datapaths_record_rule() -> None:
    from dfagent.agent.run import datapath_config

    vips = [{"prefix": "1.1.1.1/32", "mode": "mirror"}]
    mirror = {"sources": ["5.5.5.5"]}
    plain = datapath_config(parse({"vips": vips, "mirror": mirror}))
    assert plain.pin_maps and not plain.record
    both = datapath_config(parse({"vips": vips, "mirror": {**mirror, "record": True}}))
    assert both.pin_maps and both.record
    with pytest.raises(ConfigError, match=r"mirror\.record.*needs both directions"):
        parse({"vips": vips, "mirror": {**mirror, "record": True},
               "linux": {"one_direction": True}})  # fmt: skip
    eos = {"type": "eos", "eos": {"profile": "arista-ceos-lab", "endpoint": "sw1"}}
    with pytest.raises(ConfigError, match=r"mirror\.record.*needs backend linux"):
        parse({"vips": vips, "mirror": {**mirror, "record": True}, "backend": eos})


def test_config_mirror_evict_reaches_the_datapath() -> None:
    from dfagent.agent.run import datapath_config

    vips = [{"prefix": "1.1.1.1/32", "mode": "mirror"}]
    mirror = {"sources": ["5.5.5.5"], "pin_map_size": 5000}
    assert not datapath_config(parse({"vips": vips, "mirror": mirror})).pin_evict
    on = datapath_config(parse({"vips": vips, "mirror": {**mirror, "evict": True}}))
    assert on.pin_evict and on.pin_map_size == 5000
    with pytest.raises(ConfigError, match=r"mirror\.evict.*needs both directions"):
        parse({"vips": vips, "mirror": {**mirror, "evict": True},
               "linux": {"one_direction": True}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"mirror\.evict.*expected true or false"):
        parse({"vips": vips, "mirror": {**mirror, "evict": "yes"}})
