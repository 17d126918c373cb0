"""One long-lived libnftables handle for everything dfagent does to nftables.

Spawning ``nft`` per change manages about 460 changes/s; one handle with micro-batches about
100 k/s (field notes). All writes go through :meth:`Nft.run`, serialised by a lock.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from dfagent.backends.linux.ruleset import TABLE, T


class NftError(RuntimeError):
    def __init__(self, script: str, rc: int, err: str) -> None:
        head = script if len(script) < 400 else script[:400] + "…"
        super().__init__(f"nft failed (rc={rc}): {err.strip()} in: {head.strip()}")
        self.rc = rc
        self.err = err


class NftScripts(Protocol):
    """Writes nft scripts (all a map-mode pinner needs)."""

    def run(self, script: str) -> str: ...


class NftHandle(NftScripts, Protocol):
    """What the datapath does with nftables (:class:`Nft`; the unit tests' fakes)."""

    def run_json(self, command: str, terse: bool = False) -> list[dict[str, Any]]: ...
    def table_exists(self) -> bool: ...
    def map_elements(self, name: str) -> list[tuple[list[Any] | Any, Any]]: ...
    def set_elements(self, name: str) -> list[Any]: ...
    def counters(self) -> dict[str, int]: ...
    def delete_table(self) -> bool: ...


class Nft:
    def __init__(self) -> None:
        import nftables  # only the linux backend imports the binding

        self._nft = nftables.Nftables()
        self._nft.set_handle_output(False)
        self._lock = threading.Lock()

    def run(self, script: str) -> str:
        """Run a text script as one transaction; raise :class:`NftError` on failure."""
        if not script.strip():
            return ""
        with self._lock:
            self._nft.set_json_output(False)
            rc, out, err = self._nft.cmd(script)
        if rc != 0:
            raise NftError(script, rc, err)
        return str(out)

    def run_json(self, command: str, terse: bool = False) -> list[dict[str, Any]]:
        """A list command's JSON objects; ``terse`` leaves set and map elements out (the
        per-flow maps of map mode can hold millions)."""
        with self._lock:
            self._nft.set_json_output(True)
            self._nft.set_terse_output(terse)
            try:
                rc, out, err = self._nft.cmd(command)
            finally:
                self._nft.set_json_output(False)
                self._nft.set_terse_output(False)
        if rc != 0:
            raise NftError(command, rc, err)
        return list(json.loads(out).get("nftables", [])) if out else []

    def table_exists(self) -> bool:
        try:
            self.run_json(f"list table {T}", terse=True)
        except NftError:
            return False
        return True

    def map_elements(self, name: str) -> list[tuple[list[Any] | Any, Any]]:
        """Elements of a small map (next-hop maps; never the per-flow ones)."""
        try:
            data = self.run_json(f"list map {T} {name}")
        except NftError:
            return []
        out: list[tuple[list[Any] | Any, Any]] = []
        for item in data:
            m = item.get("map")
            if not m:
                continue
            for key, value in m.get("elem", []):
                if isinstance(key, dict) and "concat" in key:
                    key = key["concat"]
                out.append((key, value))
        return out

    def set_elements(self, name: str) -> list[Any]:
        try:
            data = self.run_json(f"list set {T} {name}")
        except NftError:
            return []
        for item in data:
            s = item.get("set")
            if s:
                return list(s.get("elem", []))
        return []

    def counters(self) -> dict[str, int]:
        """Packet counts of the table's named counters ({} when there is no table)."""
        try:
            data = self.run_json(f"list counters table {T}")
        except NftError:
            return {}
        return {
            str(c["name"]): int(c.get("packets", 0)) for item in data if (c := item.get("counter"))
        }

    def delete_table(self) -> bool:
        if not self.table_exists():
            return False
        self.run(f"delete table {T}\n")
        return True


__all__ = ["Nft", "NftError", "TABLE"]
