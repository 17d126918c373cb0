"""Flow names on the switch: made from the 5-tuple, read back into it.

EOS refuses a space, ``,``, ``.`` or ``/`` in a DirectFlow flow name, so addresses are
written with ``_`` for their separators (``10_0_0_1``, ``2001_db8__1``) and the fields are
joined by ``-``:  ``PREFIX-SRC-SPORT-DST-DPORT``. The prefix is this agent's (one per agent
sharing a switch) and holds no ``-``, so "is it mine" is ``name.startswith(prefix + "-")`` and
agent ``dfa1`` never reads agent ``dfa10``'s flows as its own. The same name is used for the
ACL/class/match entries of PBR and traffic-policy pins.
"""

from __future__ import annotations

import ipaddress
import re

from dfagent.core.pintable import Flow

PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
MAX_NAME = 100  # EOS names are limited; the longest IPv6 name here is 98 characters


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a flow-name prefix, or None."""
    if not PREFIX_RE.match(prefix):
        return (
            f"{prefix!r} is not a flow-name prefix (a letter, then up to 23 of A-Z a-z 0-9 _; "
            "no '-', which separates the name's fields)"
        )
    return None


def _addr(text: str) -> str:
    ip = ipaddress.ip_address(text)
    sep = "." if ip.version == 4 else ":"
    return str(ip).replace(sep, "_")


def _unaddr(text: str) -> str:
    if re.fullmatch(r"\d{1,3}(_\d{1,3}){3}", text):
        return str(ipaddress.IPv4Address(text.replace("_", ".")))
    # "1_2_3_4" is no IPv6 address (too few groups, no "::"), so the forms never collide
    return str(ipaddress.IPv6Address(text.replace("_", ":")))


def flow_name(prefix: str, flow: Flow) -> str:
    return f"{prefix}-{_addr(flow.src)}-{flow.sport}-{_addr(flow.dst)}-{flow.dport}"


def is_ours(prefix: str, name: str) -> bool:
    return name.startswith(prefix + "-")


def parse_name(prefix: str, name: str) -> Flow | None:
    """The flow a name of this agent stands for; None when it is not ours or not a flow."""
    if not is_ours(prefix, name):
        return None
    parts = name[len(prefix) + 1 :].split("-")
    if len(parts) != 4:
        return None
    src, sport, dst, dport = parts
    try:
        flow = Flow(_unaddr(src), _unaddr(dst), int(sport), int(dport))
    except ValueError:
        return None
    if not (0 < flow.sport < 65536 and 0 < flow.dport < 65536):
        return None
    if ipaddress.ip_address(flow.src).version != ipaddress.ip_address(flow.dst).version:
        return None
    if flow_name(prefix, flow) != name:  # one name per flow: "010_0_0_1" is not ours
        return None
    return flow
