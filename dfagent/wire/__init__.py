"""Pure decoders for mirrored packets: GRE, ERSPAN I/II/III, Ethernet+VLAN, IPv4/IPv6, TCP.

No I/O, no clock, no logging, and no import of the rest of dfagent. The entry points:

    decode_mirror(buf) -> SynEvent | Skip      raises DecodeError
    decode_gre(buf, mirror) -> SynEvent | Skip raises DecodeError
    decode_synack(buf) / decode_synack_gre(buf, mirror) -> SynAckEvent | Skip (second chance)

`IMPLEMENTATION` says whether those two are the C accelerator (_fastsyn.c, "c") or the
pure-Python decoders ("python"); `decode_mirror_py` / `decode_gre_py` are always the latter.

Module map: errors.py (DecodeError, Skip), ip.py, gre.py, erspan.py, ether.py, tcp.py,
syn.py (SynEvent, the fast path and the reference path), pcap.py (reading capture files).
"""

from dfagent.wire.errors import (
    SKIP_FRAGMENT,
    SKIP_NOT_IP,
    SKIP_NOT_SYN,
    SKIP_NOT_TCP,
    DecodeError,
    Skip,
)
from dfagent.wire.syn import (
    ENCAPS,
    IMPLEMENTATION,
    SynAckEvent,
    SynEvent,
    decode_gre,
    decode_gre_py,
    decode_gre_slow,
    decode_mirror,
    decode_mirror_py,
    decode_slow,
    decode_synack,
    decode_synack_gre,
    format_addr,
)

__all__ = [
    "ENCAPS",
    "IMPLEMENTATION",
    "SKIP_FRAGMENT",
    "SKIP_NOT_IP",
    "SKIP_NOT_SYN",
    "SKIP_NOT_TCP",
    "DecodeError",
    "Skip",
    "SynAckEvent",
    "SynEvent",
    "decode_gre",
    "decode_gre_py",
    "decode_gre_slow",
    "decode_mirror",
    "decode_mirror_py",
    "decode_slow",
    "decode_synack",
    "decode_synack_gre",
    "format_addr",
]
