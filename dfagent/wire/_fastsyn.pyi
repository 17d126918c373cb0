# The C accelerator of dfagent.wire (_fastsyn.c); see dfagent/wire/syn.py.
from collections.abc import Callable
from typing import Any

def configure(
    event_type: type[tuple[Any, ...]],
    encaps: tuple[str, str, str, str, str],
    skip_not_syn: object,
    skip_not_tcp: object,
    skip_not_ip: object,
    skip_fragment: object,
    fallback_mirror: Callable[[bytes], Any],
    fallback_gre: Callable[[bytes, bytes], Any],
) -> bool: ...
def decode_mirror(buf: bytes) -> Any: ...
def decode_gre(buf: bytes, mirror: bytes) -> Any: ...
