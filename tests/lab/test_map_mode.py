"""Map mode on a real kernel: per-flow pins written through the MapPinner API.

Same lab as the kernel-mode test. The egress of each flow is observed (here: the server that
answered; in production the mirrored SYN's ERSPAN session), then pinned through
``MapPinner.pin`` in a process inside the router namespace; draining a server breaks nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from dfagent.lab.retry import wait_until
from tests.lab.router_lab import SERVERS, VIP4, VIP6, Lab, broken, in_map

pytestmark = pytest.mark.lab

FEEDER_PY = r"""
import json, sys
from dfagent.backends.linux.nft import Nft
from dfagent.backends.linux.mapmode import MapPinner, kernel_resolver
nft = Nft()
pinner = MapPinner(nft, kernel_resolver(nft), timeout=300)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "pin":
        st = pinner.pin([tuple(i) for i in req["items"]])
        out = {"pinned": st.pinned, "unknown": st.unknown_nexthop, "replaced": st.replaced,
               "failed": st.failed, "count": pinner.count()}
    elif req["op"] == "unpin":
        out = {"removed": pinner.unpin([tuple(i) for i in req["items"]]), "count": pinner.count()}
    else:
        out = {"mark": pinner.lookup(*req["flow"])}
    print(json.dumps(out), flush=True)
"""


class Feeder:
    def __init__(self, lab: Lab) -> None:
        path = lab.tmp / "feeder.py"
        path.write_text(FEEDER_PY)
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns["r"], sys.executable, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lab.procs.append(self.p)

    def __call__(self, **req: object) -> dict[str, object]:
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        return dict(json.loads(self.p.stdout.readline()))


GW = {
    4: {s: f"10.0.{i}.2" for i, s in enumerate(SERVERS, 1)},
    6: {s: f"fd00:{i}::2" for i, s in enumerate(SERVERS, 1)},
}


def test_map_mode(lab: Lab) -> None:
    base = lab.snapshot()
    lab.start_agent("map", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
    wait_until(lambda: in_map(lab.status()) >= 6, what="map-mode agent")
    feed = Feeder(lab)

    before, flows = lab.open_flows(30, 20)
    assert set(before) == set(SERVERS)
    items = []
    for name, (src, sport) in zip(before, flows, strict=True):
        fam = 6 if ":" in src else 4
        items.append([src, VIP6 if fam == 6 else VIP4, sport, 8080, GW[fam][name]])
    # one unknown next hop is counted, not pinned
    res = feed(op="pin", items=[*items, ["10.0.0.2", VIP4, 1, 8080, "192.0.2.9"]])
    assert res["pinned"] == len(items) and res["unknown"] == 1 and res["failed"] == 0, res
    # pinning again is idempotent; a changed next hop replaces the element
    again = feed(op="pin", items=items[:5])
    assert again["pinned"] == 5 and again["failed"] == 0, again
    src, dst, sport, dport, _ = items[0]
    assert feed(op="lookup", flow=[src, dst, sport, dport])["mark"] is not None

    lab.set_members(("s2", "s3"))
    after = lab.check()
    print(f"map mode, drain: {broken(before, after)} of {len(before)} broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    fresh = lab.open(20, 10, keep=False)
    assert "s1" not in fresh

    # the pins reached conntrack (ct mark set from the map): drained s1 keeps its table
    st = lab.status()
    s1 = [n for n in st["nexthops"] if n["gateway"] in (GW[4]["s1"], GW[6]["s1"])]
    assert all(n["state"] == "drained" and n["rule"] for n in s1), s1
    assert sum(n["pinned"] for n in s1) == before.count("s1")

    # unpin removes elements (the conntrack mark still holds the connection)
    rem = feed(op="unpin", items=items[:10])
    assert rem["removed"] == 10
    assert feed(op="lookup", flow=[src, dst, sport, dport])["mark"] is None
    assert broken(before, lab.check()) == 0

    lab.set_members(SERVERS)
    lab.stop_agent()
    lab.dfagent("cleanup")
    time.sleep(0.2)
    after_snap = lab.snapshot()
    for key in base:
        assert after_snap[key] == base[key], key


SENDER_PY = r"""
import json, sys
from dfagent.lab.mirror_sender import RawGreSender, mirrored_syn
flows = json.loads(sys.argv[1])
with RawGreSender("10.0.0.1") as tx:
    for src, dst, sport, dport, session in flows:
        tx.send(mirrored_syn("erspan2", "10.0.0.2", "10.0.0.1", src, dst, sport, dport,
                             session=session, outer=False))
"""


def map_elements(lab: Lab, name: str) -> int:
    out = lab.x("r", f"nft -j list map inet dfagent {name}")
    for item in json.loads(out)["nftables"]:
        if "map" in item:
            return len(item["map"].get("elem", []))
    return 0


def gre_listening(lab: Lab) -> bool:
    """A raw socket for GRE (protocol 47 = 0x2F in /proc/net/raw's port column) is open on r:
    the agent's mirror receiver is bound."""
    return any(
        line.split()[1].endswith(":002F")
        for line in lab.x("r", "cat /proc/net/raw /proc/net/raw6").splitlines()[1:]
        if len(line.split()) > 1
    )


def test_map_mode_from_mirrored_syns(lab: Lab) -> None:
    """The whole path: ERSPAN II mirrors of the SYNs → receiver → session → next hop → pin."""
    sessions = [f"--nexthop-map={i}={GW[4][s]}" for i, s in enumerate(SERVERS, 1)]
    sessions += [f"--nexthop-map={10 + i}={GW[6][s]}" for i, s in enumerate(SERVERS, 1)]
    lab.start_agent(
        "map", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128", "--mirror-source", "10.0.0.2",
        *sessions,
    )  # fmt: skip
    wait_until(lambda: in_map(lab.status()) >= 6, what="map-mode agent")
    wait_until(lambda: gre_listening(lab), what="the mirror receiver")

    before, flows = lab.open_flows(30, 20)
    assert set(before) == set(SERVERS)
    idx = {s: i for i, s in enumerate(SERVERS, 1)}
    mirrored = []
    for name, (src, sport) in zip(before, flows, strict=True):
        v6 = ":" in src
        mirrored.append([src, VIP6 if v6 else VIP4, sport, 8080, idx[name] + (10 if v6 else 0)])
    mirrored.append(["10.0.0.2", VIP4, 1, 8080, 99])  # unknown session: ignored
    (lab.tmp / "sender.py").write_text(SENDER_PY)
    lab.x("c", f"{sys.executable} {lab.tmp / 'sender.py'} '{json.dumps(mirrored)}'")
    wait_until(
        lambda: (map_elements(lab, "pin4"), map_elements(lab, "pin6")) == (30, 20),
        what="pins from the mirror",
    )
    lab.set_members(("s2", "s3"))
    after = lab.check()
    print(f"map mode from mirrored SYNs, drain: {broken(before, after)} of {len(before)} broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))


def test_map_mode_refuses_mirrors_from_strangers_and_flows_not_for_a_vip(lab: Lab) -> None:
    """Mirrored SYNs from a source not on the allow-list, or for a destination that is no
    VIP, become no pin (10 of 10 spoofed SYNs used to become 5-minute pins)."""
    sessions = [f"--nexthop-map={i}={GW[4][s]}" for i, s in enumerate(SERVERS, 1)]
    lab.start_agent(
        "map", "--vip", f"{VIP4}/32", "--mirror-source", "10.0.0.77", *sessions
    )  # the real mirror source is 10.0.0.2: everything it sends is a stranger's
    wait_until(lambda: in_map(lab.status()) >= 3, what="map-mode agent")
    wait_until(lambda: gre_listening(lab), what="the mirror receiver")
    (lab.tmp / "sender.py").write_text(SENDER_PY)
    spoofed = [["10.0.0.2", VIP4, 1000 + i, 8080, 1] for i in range(10)]
    lab.x("c", f"{sys.executable} {lab.tmp / 'sender.py'} '{json.dumps(spoofed)}'")
    lab.stop_agent()

    lab.start_agent("map", "--vip", f"{VIP4}/32", "--mirror-source", "10.0.0.2", *sessions)
    # the nh maps outlive the first agent: only the receiver's socket says the second is up
    wait_until(lambda: in_map(lab.status()) >= 3, what="map-mode agent again")
    wait_until(lambda: gre_listening(lab), what="the mirror receiver again")
    not_vip = [["10.0.0.2", "192.0.2.80", 2000 + i, 8080, 1] for i in range(10)]
    barrier = [["10.0.0.2", VIP4, 3000, 8080, 2]]  # one legitimate pin, sent last
    lab.x("c", f"{sys.executable} {lab.tmp / 'sender.py'} '{json.dumps(not_vip + barrier)}'")
    wait_until(lambda: map_elements(lab, "pin4") >= 1, what="the legitimate pin")
    time.sleep(0.3)
    assert map_elements(lab, "pin4") == 1
    out = lab.x("r", "nft -j list map inet dfagent pin4")
    assert '"10.0.0.2", "1.1.1.1", 3000, 8080' in out.replace("[", "").replace("]", ""), out
