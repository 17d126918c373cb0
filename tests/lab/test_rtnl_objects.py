"""The agent's raw rtnetlink requests (links, neighbours, rules, route lookups and single
route writes) against a real kernel, compared with what iproute2 reads back."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.lab

SLOT = 0x0DFA0005
MASK = 0x0FFF0000
MARK = 0x0A050000

SNIPPET = f"""
import json
from dataclasses import asdict
from dfagent.backends.linux.netlink import Netlink, OwnedRoute
from dfagent.core.nexthops import NextHop

nl = Netlink()
out = {{}}
nl.refresh_names()
out["links"] = {{n: list(v) for n, v in nl._links.items()}}
out["up"] = [nl.link_up("va"), nl.link_up("vdown"), nl.link_up("nosuch")]
out["ifindex"] = nl.ifindex("vb")
out["ifname"] = nl.ifname(out["ifindex"])
out["fresh"] = [Netlink().ifindex("vb"), Netlink().ifname(out["ifindex"]), Netlink().ifindex("x")]
out["neigh"] = sorted(f"{{i}} {{a}} {{s}}" for (i, a), s in nl.neighbour_states().items())
nl.add_rule(4, {MARK}, {MASK}, {SLOT})
nl.add_rule(6, {MARK}, {MASK}, {SLOT})
try:
    nl.add_rule(4, {MARK}, {MASK}, {SLOT})
    out["again"] = "accepted"
except OSError as exc:
    out["again"] = exc.errno
out["owned"] = [asdict(r) for r in nl.owned_rules()]
out["fwmark"] = [list(r) for r in nl.fwmark_rules()]
nl.replace_route({SLOT}, "1.1.1.1/32", NextHop(4, "va", "10.77.0.9"))
nl.replace_route({SLOT}, "2001:db8::1/128", NextHop(6, "va", "fd77::9"))
out["routes"] = sorted(str(r) for r in nl.owned_routes())
out["route_ifname"] = [nl.route_ifname("10.77.0.5"), nl.route_ifname("fd77::5"),
                       nl.route_ifname("192.0.2.1")]
for r in nl.owned_routes():
    nl.del_route(r)
for r in nl.owned_rules():
    nl.del_rule(r)
out["after"] = [nl.owned_rules(), nl.owned_routes()]
print(json.dumps(out))
"""


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"dft-rtnl-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            "ip link set lo up",
            "ip link add va type veth peer name vb",
            "ip link add vdown type veth peer name vdown2",
            "ip link set va up",
            "ip link set vb up",
            "ip addr add 10.77.0.1/24 dev va",
            "ip addr add fd77::1/64 dev va nodad",
            "ip neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev va nud permanent",
            "ip neigh add fd77::9 lladdr 02:00:00:00:00:09 dev va nud stale",
            # another mark user's rule: reported by fwmark_rules, never owned
            "ip rule add fwmark 0x40/0xff lookup 100 priority 500",
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd.split()], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_netlink_requests_match_iproute2(ns: str) -> None:
    def ip_json(*args: str) -> list[dict[str, object]]:
        argv = ["ip", "netns", "exec", ns, "ip", "-j", *args]
        return list(json.loads(subprocess.run(argv, capture_output=True, text=True).stdout))

    links = {str(x["ifname"]): int(str(x["ifindex"])) for x in ip_json("link", "show")}
    argv = ["ip", "netns", "exec", ns, sys.executable, "-c", SNIPPET]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {n: v[0] for n, v in out["links"].items()} == links
    assert out["up"] == [True, False, False]
    assert out["ifindex"] == links["vb"] and out["ifname"] == "vb"
    assert out["fresh"] == [links["vb"], "vb", None]  # single gets, no dump cached
    va = links["va"]
    assert f"{va} 10.77.0.9 128" in out["neigh"]  # NUD_PERMANENT
    assert f"{va} fd77::9 4" in out["neigh"]  # NUD_STALE
    assert out["again"] == 17  # EEXIST: a second identical rule is refused, as `ip rule add`
    owned = sorted((r["family"], r["mark"], r["mask"], r["table"], r["priority"])
                   for r in out["owned"])  # fmt: skip
    assert owned == [(4, MARK, MASK, SLOT, 9000), (6, MARK, MASK, SLOT, 9000)]
    assert [4, 500, 0x40, 0xFF] in out["fwmark"]
    assert not [r for r in out["fwmark"] if r[2] == MARK]
    assert len(out["routes"]) == 2 and all("'va'" in r for r in out["routes"]), out["routes"]
    assert any("10.77.0.9" in r for r in out["routes"])
    assert any("fd77::9" in r for r in out["routes"])
    assert out["route_ifname"] == ["va", "va", None]
    assert out["after"] == [[], []]
    # iproute2 sees nothing of dfagent left, and the other user's rule untouched
    rules = ip_json("rule", "show")
    assert not [r for r in rules if r.get("priority") == 9000], rules
    assert [r for r in rules if r.get("priority") == 500 and r.get("fwmark") == "0x40"], rules
