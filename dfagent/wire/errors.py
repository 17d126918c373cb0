"""The one error type of the wire codecs, and the "skip" outcome.

Every decoder in `dfagent.wire` either returns a value, returns a `Skip` (a well-formed packet
that is not a TCP SYN: a SYN-ACK, UDP, ARP, a non-first fragment), or raises `DecodeError`.
Nothing else can come out of them: that is what the fuzz tests check.
"""

from __future__ import annotations


class DecodeError(Exception):
    """A packet we cannot decode.

    `layer` names the header that was bad ("ipv4", "ipv6", "gre", "erspan", "ether", "tcp",
    "outer-ipv4", ...), `offset` is the byte offset of that header in the buffer that was
    given to the decoder, `reason` is a short fixed text (no packet values in it, so it can
    be used as a counter label) and `detail` optionally carries the offending value.
    """

    __slots__ = ("layer", "offset", "reason", "detail")

    def __init__(self, layer: str, offset: int, reason: str, detail: str | None = None) -> None:
        super().__init__(layer, offset, reason, detail)
        self.layer = layer
        self.offset = offset
        self.reason = reason
        self.detail = detail

    @property
    def label(self) -> str:
        """A bounded counter label: `layer: reason`, without values or offsets."""
        return f"{self.layer}: {self.reason}"

    def __str__(self) -> str:
        d = f" ({self.detail})" if self.detail else ""
        return f"{self.layer}: {self.reason}{d} at offset {self.offset}"

    def __repr__(self) -> str:
        return f"DecodeError({self.layer!r}, {self.offset}, {self.reason!r}" + (
            f", {self.detail!r})" if self.detail else ")"
        )


class Skip:
    """A well-formed packet that carries no new TCP connection.

    Instances are shared singletons (compare with `is` or by `reason`); the hot path never
    allocates one.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Skip({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Skip) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Skip", self.reason))


#: TCP, but not a connection opener (SYN-ACK, ACK, RST, FIN, data ...).
SKIP_NOT_SYN = Skip("not-syn")
#: IP, but not TCP (UDP, ICMP, "no next header" ...).
SKIP_NOT_TCP = Skip("not-tcp")
#: An Ethernet frame that carries neither IPv4 nor IPv6 (ARP, LLDP ...).
SKIP_NOT_IP = Skip("not-ip")
#: A non-first IP fragment: it has no TCP header, so there is nothing to decode.
SKIP_FRAGMENT = Skip("fragment")

SKIPS = (SKIP_NOT_SYN, SKIP_NOT_TCP, SKIP_NOT_IP, SKIP_FRAGMENT)
