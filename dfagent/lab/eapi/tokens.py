"""Reading one CLI command word by word, with EOS's error texts.

Keywords are case-insensitive. Abbreviations (`sh ver`) count only when the request set
`autoComplete`, as eAPI does; otherwise a backend must send whole words.
"""

from __future__ import annotations

import ipaddress
import re

from dfagent.lab.eapi.directflow import IPAddress, IPNetwork

_INTERFACE = re.compile(r"^(ethernet|et|port-channel|po|vlan|vl|loopback|lo)(\d+(?:/\d+)*)$", re.I)
_INTERFACE_NAMES = {
    "ethernet": "Ethernet",
    "et": "Ethernet",
    "port-channel": "Port-Channel",
    "po": "Port-Channel",
    "vlan": "Vlan",
    "vl": "Vlan",
    "loopback": "Loopback",
    "lo": "Loopback",
}

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]*$")  # prefix-lists, route-maps, ACLs, policies


class CommandError(Exception):
    """A command the switch refuses: eAPI error code, summary, and the per-command text."""

    SUMMARY = {
        1002: "invalid command",
        1003: "unconverted command",
        1005: "permission to run command denied",
    }

    def __init__(self, code: int, error: str) -> None:
        super().__init__(error)
        self.code = code
        self.error = error

    @property
    def summary(self) -> str:
        return self.SUMMARY.get(self.code, "command failed")


class NoMatch(Exception):
    """The first word is not a command of this mode (the caller tries the parent mode)."""


def invalid(index: int, word: str | None) -> CommandError:
    return CommandError(1002, f"Invalid input (at token {index}: {word!r})")


def incomplete() -> CommandError:
    return CommandError(1002, "Incomplete command")


class Tokens:
    def __init__(self, words: list[str], auto_complete: bool = False) -> None:
        self.words = words
        self.pos = 0
        self.auto = auto_complete

    def __bool__(self) -> bool:
        return self.pos < len(self.words)

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def _choose(self, word: str, options: tuple[str, ...]) -> str | None:
        w = word.lower()
        if w in options:
            return w
        if self.auto:
            hits = [o for o in options if o.startswith(w)]
            if len(hits) == 1:
                return hits[0]
        return None

    def accept(self, *options: str) -> str | None:
        """The next word if it is one of the keywords (consumed), else None."""
        word = self.peek()
        if word is None:
            return None
        hit = self._choose(word, options)
        if hit is not None:
            self.pos += 1
        return hit

    def keyword(self, *options: str) -> str:
        word = self.peek()
        if word is None:
            raise incomplete()
        hit = self._choose(word, options)
        if hit is None:
            raise self.invalid()
        self.pos += 1
        return hit

    def first(self, *options: str) -> str:
        """The command's first word; NoMatch lets a parent mode try it."""
        word = self.peek()
        hit = None if word is None else self._choose(word, options)
        if hit is None:
            raise NoMatch()
        self.pos += 1
        return hit

    def word(self) -> str:
        word = self.peek()
        if word is None:
            raise incomplete()
        self.pos += 1
        return word

    def integer(self, lo: int, hi: int) -> int:
        word = self.peek()
        if word is None:
            raise incomplete()
        if not word.isdigit() or not lo <= int(word) <= hi:
            raise self.invalid()
        self.pos += 1
        return int(word)

    def address(self, version: int | None = None) -> IPAddress:
        word = self.peek()
        if word is None:
            raise incomplete()
        try:
            addr = ipaddress.ip_address(word)
        except ValueError:
            raise self.invalid() from None
        if version is not None and addr.version != version:
            raise self.invalid()
        self.pos += 1
        return addr

    def prefix(self, version: int | None = None, strict: bool = True) -> IPNetwork:
        """A/len; strict: host bits must be zero, as EOS wants in prefix-lists."""
        word = self.peek()
        if word is None:
            raise incomplete()
        try:
            if "/" not in word:
                raise ValueError(word)
            net = ipaddress.ip_network(word, strict=strict)
        except ValueError:
            raise self.invalid() from None
        if version is not None and net.version != version:
            raise self.invalid()
        self.pos += 1
        return net

    def interface(self) -> str:
        """An interface name in EOS's long form (Et1 -> Ethernet1)."""
        word = self.peek()
        if word is None:
            raise incomplete()
        m = _INTERFACE.match(word)
        if not m:
            raise self.invalid()
        self.pos += 1
        return _INTERFACE_NAMES[m.group(1).lower()] + m.group(2)

    def name(self) -> str:
        """A config object's name: letters, digits, _ : - (no spaces, dots or slashes)."""
        word = self.peek()
        if word is None:
            raise incomplete()
        if not NAME.match(word):
            raise self.invalid()
        self.pos += 1
        return word

    def end(self) -> None:
        if self:
            raise self.invalid()

    def invalid(self) -> CommandError:
        return invalid(self.pos, self.peek())
