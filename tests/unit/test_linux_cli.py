"""`dfagent linux …` argument errors: one clear line, exit 2, before anything is touched."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dfagent.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["linux", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kernel", "--vip", "10.0.0.0/8", "--vip", "10.1.0.0/16"),
         "10.0.0.0/8 and 10.1.0.0/16 overlap"),
        (("kernel", "--vip", "10.0.0.1/8"), "has host bits set"),
        (("kernel", "--vip", "1.1.1.1/32", "--mark-mask", "0x0f0f0000"), "contiguous"),
        (("kernel", "--vip", "1.1.1.1/32", "--gc-grace", "0"), "more than 0 seconds"),
        (("map", "--vip", "1.1.1.1/32", "--nexthop-map", "1=10.0.1.2"),
         "--mirror-source is required with --nexthop-map"),
        (("map", "--vip", "1.1.1.1/32", "--nexthop-map", "1=10.0.1.2",
          "--mirror-source", "10.0.0.300"), "not an IP address: 10.0.0.300"),
        (("map", "--vip", "1.1.1.1/32", "--nexthop-map", "1=10.0.1.2",
          "--mirror-source", "any", "--mirror-source", "10.0.0.1"), "cannot be combined"),
        (("map", "--vip", "1.1.1.1/32", "--nexthop-map", "1=fe80::1"), "add %IFNAME"),
        (("map", "--vip", "1.1.1.1/32", "--size", "0"), "more than 0"),
        (("kernel", "--vip", "1.1.1.1/32", "--protocols", "tcp,quic"), "quic is not tcp or udp"),
        (("kernel", "--vip", "1.1.1.1/32", "--protocols", "1.1.1.2/32=udp"),
         "1.1.1.2/32 is not one of the --vip prefixes"),
        (("kernel", "--vip", "1.1.1.1/32", "--one-direction", "--protocols", "udp"),
         "udp with --one-direction"),
        (("map", "--vip", "1.1.1.1/32", "--protocols", "udp"), "No such option '--protocols'"),
        (("kernel", "--vip", "1.1.1.1/32", "--one-direction", "--syn-untracked"),
         "--syn-untracked with --one-direction"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_clear_line(args: tuple[str, ...], message: str) -> None:
    code, out = run(*args)
    assert code == 2, out
    assert message in out, out
    assert "Traceback" not in out


def test_every_option_has_help() -> None:
    import click

    from dfagent.cli.linux import linux

    for name, cmd in linux.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"linux {name} {p.opts} has no description"
