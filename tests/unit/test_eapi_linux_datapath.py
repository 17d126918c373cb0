"""The lab datapath's bookkeeping with a fake nft and ip (the real thing:
tests/eos/test_eapi_linux_datapath.py): which flows it can express, one transaction per
request, a replaced flow's element swapped in one go, two flows on one 5-tuple."""

from __future__ import annotations

import ipaddress
import subprocess

from dfagent.lab.eapi import FakeClock
from dfagent.lab.eapi.directflow import ETH_IPV4, FlowConfig, FlowTable
from dfagent.lab.eapi.linux_datapath import LinuxDatapath, flow_key


class FakeNft:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def cmd(self, script: str) -> tuple[int, str, str]:
        self.scripts.append(script)
        return 0, "", ""

    def set_json_output(self, on: bool) -> None:
        pass


def ip_ok(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(argv, 0, "[]", "")


def flow(
    name: str, sport: int = 1000, nexthop: str | None = "10.2.1.2", **kw: object
) -> FlowConfig:
    return FlowConfig(
        name=name,
        ethertype=ETH_IPV4,
        src=ipaddress.ip_network("10.1.0.10/32"),
        dst=ipaddress.ip_network("1.1.1.1/32"),
        ip_proto=6,
        sport=sport,
        dport=80,
        nexthop=ipaddress.ip_address(nexthop) if nexthop else None,
        **kw,  # type: ignore[arg-type]
    )


def setup() -> tuple[FlowTable, LinuxDatapath, FakeNft]:
    nft = FakeNft()
    dp = LinuxDatapath(run_ip=ip_ok, nft=nft)
    table = FlowTable(clock=FakeClock(), enabled=True, observers=[dp])
    return table, dp, nft


def test_only_exact_five_tuples_with_a_nexthop_are_expressed() -> None:
    assert flow_key(flow("a")) == (4, "10.1.0.10", "1.1.1.1", 6, 1000, 80)
    assert flow_key(flow("a").with_(src=ipaddress.ip_network("10.1.0.0/24"))) is None
    assert flow_key(flow("a").with_(sport=None)) is None
    table, dp, nft = setup()
    table.commit(flow("b", nexthop=None, out_interfaces=("Ethernet2",)))
    table.done()
    assert dp.stats.unsupported == 1 and nft.scripts == []


def test_a_request_is_one_transaction_and_a_replaced_flow_is_swapped_in_it() -> None:
    table, dp, nft = setup()
    for i in range(3):
        table.commit(flow(f"f{i}", sport=1000 + i))
    table.done()
    assert len(nft.scripts) == 1 and nft.scripts[0].count("add element") == 3
    table.commit(flow("f0", nexthop="10.2.3.2"))  # changed next hop
    table.done()
    script = nft.scripts[-1]
    assert script.index("delete element") < script.index("add element")
    assert ": 0x20000" in script and dp.marks == {"10.2.1.2": 0x10000, "10.2.3.2": 0x20000}
    table.remove("f1")
    table.done()
    assert nft.scripts[-1].strip().startswith("delete element inet dfagent_eapi flows4")


def test_two_flows_on_one_five_tuple_the_higher_priority_steers() -> None:
    table, dp, nft = setup()
    table.commit(flow("low", priority=10))
    table.commit(flow("high", nexthop="10.2.2.2", priority=20))
    table.done()
    assert nft.scripts[-1].count("add element") == 1 and ": 0x20000" in nft.scripts[-1]
    table.remove("high")
    table.done()  # the other flow takes over the element
    assert "delete element" in nft.scripts[-1] and ": 0x10000" in nft.scripts[-1]
    n = len(nft.scripts)
    table.remove("nothing")
    table.done()
    assert len(nft.scripts) == n  # nothing changed: no transaction
