"""conntrackd for one lab router: share its conntrack entries (ct marks included) with a peer.

Run as a lab service (`python -m dfagent.lab.ctsync --local A --peer B --iface IF --vip V…`):
writes ``conntrackd.conf`` into the node's run folder (``$DFAGENT_LAB_NODE_DIR``) and becomes
conntrackd (exec, foreground), so the lab records conntrackd's own pid and `lab down` (which
empties the namespace) ends it. conntrackd's default lock file and control socket are global
(/var/lock, /var/run): here both live in the run folder, one pair per instance, and a lock
left by a crashed instance of this node is removed first (nobody else uses that path).

Mode FTFW over UDP on the sync link, ``DisableExternalCache``: the peer's entries go straight
into this router's kernel table (both routers forward at once, so there is no fail-over
script to commit an external cache). Only TCP entries to or from the VIPs are sent, chosen
by the user-space filter: with ``Filter From Kernelspace`` and the same address list,
conntrackd 1.4.7 sent nothing here (0 entries while the kernel's events flowed).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
from pathlib import Path

CONF = "conntrackd.conf"
PORT = 3780


def config(run_dir: Path, local: str, peer: str, iface: str, vips: list[str]) -> str:
    accept = "\n".join(f"        IPv{ipaddress.ip_address(v).version}_address {v}" for v in vips)
    return f"""# written by dfagent.lab.ctsync
Sync {{
    Mode FTFW {{
        DisableExternalCache On
        StartupResync On
    }}
    UDP {{
        IPv4_address {local}
        IPv4_Destination_Address {peer}
        Port {PORT}
        Interface {iface}
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
}}
General {{
    Systemd off
    HashSize 32768
    HashLimit 131072
    LogFile {run_dir / "conntrackd.log"}
    Syslog off
    LockFile {run_dir / "conntrackd.lock"}
    UNIX {{
        Path {run_dir / "conntrackd.ctl"}
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    NetlinkOverrunResync On
    Filter From Userspace {{
        Protocol Accept {{
            TCP
        }}
        Address Accept {{
{accept}
        }}
    }}
}}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m dfagent.lab.ctsync", description=__doc__)
    ap.add_argument("--local", required=True, help="this router's address on the sync link")
    ap.add_argument("--peer", required=True, help="the peer's address on the sync link")
    ap.add_argument("--iface", required=True, help="the sync link's interface")
    ap.add_argument("--vip", action="append", default=[], help="sync entries of this address")
    args = ap.parse_args(argv)
    run_dir = Path(os.environ.get("DFAGENT_LAB_NODE_DIR", "."))
    binary = shutil.which("conntrackd")
    if binary is None:
        sys.exit("conntrackd not found: install the 'conntrackd' package")
    try:
        for a in (args.local, args.peer, *args.vip):
            ipaddress.ip_address(a)
    except ValueError as exc:
        sys.exit(f"ctsync: {exc}")
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = run_dir / CONF
    conf.write_text(config(run_dir.resolve(), args.local, args.peer, args.iface, args.vip))
    (run_dir / "conntrackd.lock").unlink(missing_ok=True)  # this node's, left by a crash
    (run_dir / "conntrackd.ctl").unlink(missing_ok=True)
    sys.stdout.flush()
    os.execv(binary, [binary, "-C", str(conf)])


if __name__ == "__main__":
    main()
