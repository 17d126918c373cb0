"""An `arista_ceos` lab node on the namespace runner: what its startup-config asks for, split
between the parts Linux and FRR play and the parts the eAPI test switch plays.

containerlab gives a cEOS node its `startup-config`; the namespace runner has no EOS, so it
reads the same file and stands in for it:

* ``interface EthernetN`` → ``ip address`` / ``ipv6 address`` go on the namespace's ``ethN``
  (containerlab's cEOS maps ``ethN`` to ``EthernetN`` the same way);
* ``ip routing`` / ``ipv6 unicast-routing`` → the kernel forwards;
* ``router bgp`` (and ``peer-filter``) → FRR does the routing, from the FRR config the node's label
  ``dfagent.frr-conf`` names (kept equivalent by hand: EOS and FRR BGP syntax differ);
* ``management api http-commands`` (``protocol http|https [port N]``, ``no shutdown``) and
  ``username NAME … secret [0] PASSWORD`` → the eAPI test switch's listener and login;
* everything else (hostname, DirectFlow, ACLs, monitor sessions, prefix-lists, route-maps,
  event handlers) is the test switch's running config: :func:`switch_commands` hands those
  lines to its CLI, which rejects what EOS would (so a typo fails the lab's bring-up).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

# Top-level sections the namespace runner plays with Linux/FRR, not the switch's CLI.
RUNNER_SECTIONS = (
    "interface",
    "ip routing",
    "ipv6 unicast-routing",
    "router bgp",
    "peer-filter",
    "management api",
    "username",
    "service routing",
    "end",
)
_ETH = re.compile(r"^Ethernet(\d+)$", re.IGNORECASE)


class CeosConfigError(ValueError):
    """A startup-config the namespace runner cannot stand in for (one line, with where)."""


@dataclass
class Eapi:
    protocol: str = ""  # "http" | "https" ("" until `protocol` is given)
    port: int = 0
    enabled: bool = False  # `no shutdown`


@dataclass
class CeosConfig:
    hostname: str = ""
    addresses: dict[str, list[str]] = field(default_factory=dict)  # ethN → A/len …
    ipv4_routing: bool = False
    ipv6_routing: bool = False
    eapi: Eapi = field(default_factory=Eapi)
    users: dict[str, str] = field(default_factory=dict)  # name → password (secret 0)
    switch_lines: list[str] = field(default_factory=list)  # for the test switch's CLI


def _blocks(text: str) -> list[list[str]]:
    """Top-level blocks: a line at column 0 and the indented lines under it (`!` dropped)."""
    blocks: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("!"):
            continue
        if line[0].isspace() and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def parse(text: str, where: str = "startup-config") -> CeosConfig:
    cfg = CeosConfig()
    for block in _blocks(text):
        head = block[0].split()
        word = " ".join(head[:2]).lower()
        if head[0].lower() == "interface":
            _interface(cfg, block, where)
        elif word == "ip routing":
            cfg.ipv4_routing = True
        elif word == "ipv6 unicast-routing":
            cfg.ipv6_routing = True
        elif word == "management api":
            _eapi(cfg, block, where)
        elif head[0].lower() == "username":
            _user(cfg, head, where)
        elif any(word.startswith(s) or head[0].lower() == s for s in RUNNER_SECTIONS):
            continue
        else:
            if head[0].lower() == "hostname" and len(head) == 2:
                cfg.hostname = head[1]
            cfg.switch_lines += block
    return cfg


def load(path: Path) -> CeosConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CeosConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(text, str(path))


def _interface(cfg: CeosConfig, block: list[str], where: str) -> None:
    name = block[0].split()[1] if len(block[0].split()) == 2 else ""
    m = _ETH.match(name)
    if m is None:
        raise CeosConfigError(f"{where}: {block[0].strip()!r}: only EthernetN interfaces here")
    dev = f"eth{m.group(1)}"
    for line in block[1:]:
        words = line.split()
        if words[:2] in (["ip", "address"], ["ipv6", "address"]) and len(words) == 3:
            try:
                ipaddress.ip_interface(words[2])
            except ValueError:
                raise CeosConfigError(f"{where}: {line.strip()!r}: not an A/len") from None
            cfg.addresses.setdefault(dev, []).append(words[2])
        elif words not in (["no", "switchport"],) and words[0] not in ("description", "mtu"):
            raise CeosConfigError(f"{where}: {name}: {line.strip()!r}: not modelled here")


def _eapi(cfg: CeosConfig, block: list[str], where: str) -> None:
    if block[0].split()[2:] != ["http-commands"]:
        raise CeosConfigError(f"{where}: {block[0].strip()!r}: only http-commands")
    for line in block[1:]:
        words = line.split()
        if words == ["no", "shutdown"]:
            cfg.eapi.enabled = True
        elif words == ["shutdown"]:
            cfg.eapi.enabled = False
        elif words[:1] == ["protocol"] and len(words) in (2, 4) and words[1] in ("http", "https"):
            if len(words) == 4 and (words[2] != "port" or not words[3].isdigit()):
                raise CeosConfigError(f"{where}: {line.strip()!r}: want protocol P [port N]")
            cfg.eapi.protocol = words[1]
            cfg.eapi.port = (
                int(words[3]) if len(words) == 4 else (80 if words[1] == "http" else 443)
            )
        else:
            raise CeosConfigError(f"{where}: management api: {line.strip()!r}: not modelled here")


def _user(cfg: CeosConfig, words: list[str], where: str) -> None:
    """`username NAME [privilege N] [role R] secret [0] PASSWORD` (plain text only: the lab's
    switch needs the password itself, not its hash)."""
    if "secret" not in words or len(words) < 4:
        raise CeosConfigError(f"{where}: {' '.join(words)!r}: want username NAME … secret 0 PW")
    rest = words[words.index("secret") + 1 :]
    if rest[:1] == ["0"]:
        rest = rest[1:]
    if len(rest) != 1 or rest[0] in ("5", "sha512"):
        raise CeosConfigError(f"{where}: username {words[1]}: give the secret in plain text (0)")
    cfg.users[words[1]] = rest[0]
