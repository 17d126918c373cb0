"""Switch profiles: every file in switch_profiles/ loads with the one schema; errors name
their path; the config names a profile and refuses one that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dfagent.config import ConfigError, parse
from dfagent.profiles import all_profiles, load_profile, parse_profile

REPO = Path(__file__).resolve().parents[2]


def test_every_profile_in_the_repo_loads() -> None:
    files = sorted(p.name for p in (REPO / "switch_profiles").glob("*.yaml"))
    assert files == [
        "arista-7050x.yaml", "arista-7280r3.yaml", "arista-ceos-lab.yaml", "linux-nftables.yaml",
    ]  # fmt: skip
    assert [p.stem for p in all_profiles()] == [f[:-5] for f in files]
    for f in files:
        prof = load_profile(f[:-5])
        assert prof.name == f[:-5] and prof.capacity > 0 and prof.egress


def test_what_each_platform_does() -> None:
    x = load_profile("arista-7050x")
    assert (x.pin_method, x.capacity, x.ageing, x.counters, x.mirror_encap) == (
        "directflow", 1500, "switch", True, "erspan-type-i",
    )  # fmt: skip
    r3 = load_profile("arista-7280r3")
    assert (r3.pin_method, r3.ageing, r3.mirror_encap) == ("traffic-policy", "agent", "raw-ip-88be")
    assert load_profile("arista-ceos-lab").pin_method == "pbr"
    lx = load_profile("linux-nftables")
    assert (lx.platform, lx.pin_method) == ("linux", "nftables") and "query" in lx.egress


def test_profile_errors_name_their_path() -> None:
    data = yaml.safe_load((REPO / "switch_profiles" / "arista-7050x.yaml").read_text())
    bad = {**data, "pin_method": "openflow", "capacity": -1, "egress": ["guess"], "colour": 1}
    bad["mirror"] = {"encap": "vxlan"}
    with pytest.raises(ConfigError) as exc:
        parse_profile(bad, "x.yaml")
    assert sorted(exc.value.errors) == sorted([
        "unknown key 'colour' at top level (known: name, description, platform, pin_method, "
        "capacity, ageing, counters, max_batch, mirror, egress)",
        "pin_method: 'openflow' is not one of directflow | traffic-policy | pbr",
        "egress[0]: 'guess' is not one of observed | query",
        "capacity: must be more than 0 pins, got -1",
        "mirror.encap: 'vxlan' is not one of erspan-type-i | erspan-ii | erspan-iii | "
        "raw-ip-88be | gre-ip | teb | any",
    ])  # fmt: skip
    with pytest.raises(ConfigError, match="switch; got|carry their own idle timeout"):
        parse_profile({**data, "ageing": "agent"})


def test_the_config_names_a_profile() -> None:
    base = {"vips": [{"prefix": "192.0.2.10/32", "mode": "mirror"}], "mirror": {"sources": ["any"]}}
    eos = {"endpoint": "sw1", "flow_prefix": "dfa_s1"}
    cfg = parse({**base, "backend": {"type": "eos", "eos": {**eos, "profile": "arista-7050x"}}})
    assert cfg.backend.eos is not None and cfg.backend.eos.profile == "arista-7050x"
    with pytest.raises(ConfigError) as exc:
        parse({**base, "backend": {"type": "eos", "eos": {**eos, "profile": "arista-9999"}}})
    assert exc.value.errors == [
        "backend.eos.profile: no switch profile 'arista-9999' (known: arista-7050x, "
        "arista-7280r3, arista-ceos-lab, linux-nftables)"
    ]
    with pytest.raises(ConfigError) as exc:
        parse({**base, "backend": {"type": "eos", "eos": {**eos, "profile": "linux-nftables"}}})
    assert exc.value.errors == [
        "backend.eos.profile: linux-nftables is a linux profile, not an EOS one"
    ]
