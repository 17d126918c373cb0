from dfagent.backends.linux.datapath import _unique_by_interface
from dfagent.core.nexthops import NextHop


def test_interface_names_a_member_only_when_unambiguous():
    nh_map = {
        NextHop(4, "eth2", "10.2.1.2"): 1,
        NextHop(6, "eth2", "fe80::1"): 2,
        NextHop(4, "eth3", "10.2.2.2"): 3,
        NextHop(4, "eth3", "10.2.2.3"): 4,  # two v4 next hops on one segment: ambiguous
    }
    assert _unique_by_interface(nh_map) == {(4, "eth2"): 1, (6, "eth2"): 2}
