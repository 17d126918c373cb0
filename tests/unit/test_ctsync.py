"""dfagent.lab.ctsync: the conntrackd config each lab lb runs with (the lab test runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfagent.lab import ctsync


def test_config_keeps_every_path_in_the_run_folder(tmp_path: Path) -> None:
    conf = ctsync.config(tmp_path, "10.9.0.1", "10.9.0.2", "eth6", ["1.1.1.1", "2001:db8::1"])
    assert f"LockFile {tmp_path}/conntrackd.lock" in conf
    assert f"Path {tmp_path}/conntrackd.ctl" in conf
    assert f"LogFile {tmp_path}/conntrackd.log" in conf
    assert "/var/lock" not in conf and "/var/run" not in conf
    # peer entries go straight into the kernel table; both VIP families are synced
    assert "DisableExternalCache On" in conf and "Filter From Userspace" in conf
    assert "IPv4_address 1.1.1.1" in conf and "IPv6_address 2001:db8::1" in conf
    assert "IPv4_Destination_Address 10.9.0.2" in conf and "Interface eth6" in conf


def test_a_bad_address_is_one_line_and_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFAGENT_LAB_NODE_DIR", str(tmp_path))
    monkeypatch.setattr(ctsync.shutil, "which", lambda _: "/usr/sbin/conntrackd")
    with pytest.raises(SystemExit) as exc:
        ctsync.main(["--local", "10.9.0.300", "--peer", "10.9.0.2", "--iface", "eth6"])
    assert "10.9.0.300" in str(exc.value.code)
    assert not (tmp_path / ctsync.CONF).exists()
