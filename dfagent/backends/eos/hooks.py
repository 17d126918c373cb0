"""EOS event-handlers that make the agent resync at once (pure rendering).

EOS has no "ECMP set changed" trigger (field notes); the events that change it are a BGP
session going up or down (the ``%BGP-5-ADJCHANGE`` log line) and a server-facing interface
changing its operational status. Each handler's action runs a command that asks the agent
for a full pass (``dfagent resync``: re-read the switch, reconcile pins) instead of waiting
for the periodic one. ``asynchronous``: the switch does not wait for the command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

DEFAULT_ACTION = "dfagent resync"
_INTF = re.compile(r"^[A-Za-z][A-Za-z0-9/._-]{0,63}$")


def check_interface(name: str) -> str | None:
    if not _INTF.match(name):
        return f"{name!r} is not an interface name (like Ethernet1 or Ethernet3/1)"
    return None


def _handler_name(intf: str) -> str:
    return "dfagent-intf-" + re.sub(r"[^A-Za-z0-9]", "-", intf)


def event_handlers(
    action: str = DEFAULT_ACTION,
    interfaces: Sequence[str] = (),
    poll_interval: int = 1,
    delay: int = 0,
) -> list[str]:
    """The configuration lines (from global configuration mode)."""
    if "\n" in action or not action.strip():
        raise ValueError("the action is one command line")
    bash = f"action bash {action}"
    lines = [
        "event-handler dfagent-bgp",
        "trigger on-logging",
        f"poll interval {poll_interval}",
        "regex %BGP-5-ADJCHANGE",
        "exit",
        bash,
        f"delay {delay}",
        "asynchronous",
        "exit",
    ]
    for intf in interfaces:
        why = check_interface(intf)
        if why:
            raise ValueError(why)
        lines += [
            f"event-handler {_handler_name(intf)}",
            f"trigger on-intf {intf} operstatus",
            bash,
            f"delay {delay}",
            "asynchronous",
            "exit",
        ]
    return lines


def as_config(lines: Sequence[str]) -> str:
    """Indented as ``show running-config`` prints it, to paste after ``configure``."""
    out = []
    depth = 0
    for line in lines:
        if line == "exit":
            depth = max(0, depth - 1)
            if depth == 0:
                out.append("!")
            continue
        out.append("   " * depth + line)
        if line.startswith("event-handler ") or line == "trigger on-logging":
            depth += 1
    return "\n".join(out) + "\n"


def remote_action(host: str, user: str = "root") -> str:
    """An action for agents on servers: the switch runs ``dfagent resync`` there over ssh
    (a key in the switch's ``/home/admin/.ssh``; documented in docs/eos.md)."""
    return f"ssh -o BatchMode=yes {shlex.quote(user)}@{shlex.quote(host)} dfagent resync"
