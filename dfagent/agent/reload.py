"""SIGHUP: re-read dfagent.yaml and apply what can change while running.

A file with any error changes nothing: the last good config keeps running, the log says why
(``reload-rejected``, every error with its path) and ``dfagent_config_last_reload_successful``
drops to 0 until a good file is loaded. A good file applies at once what is read per use —
next-hop names, the drain actuator, mirror sources and sessions, micro-batch sizes, the
reconcile interval, the log level — and names the keys that need a restart (the VIPs, mode,
mark mask, state dir, sockets, the metrics address…): they keep their running values, the log
says ``reload-restart-needed`` and ``dfagent_config_restart_needed`` is 1.

Runs on the agent's loop (the signal handler posts it), like every other change of state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dfagent.config import Config, ConfigError, load, to_dict

log = logging.getLogger("dfagent.run")

# keys a reload applies (top-level key, or "section.key"); everything else needs a restart
RELOADABLE = (
    "nexthops",
    "drain",
    "mirror.sources",
    "mirror.sessions",
    "mirror.batch",
    "linux.reconcile_interval",
    "log.level",
)


def changed_keys(old: Config, new: Config) -> list[str]:
    """Paths (``vips``, ``linux.mark_mask``, …) whose values differ between two configs."""
    a, b = to_dict(old), to_dict(new)
    out = []
    for key in dict.fromkeys([*a, *b]):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "nexthops":
            out += [f"{key}.{k}" for k in dict.fromkeys([*va, *vb]) if va.get(k) != vb.get(k)]
        elif va != vb:
            out.append(key)
    return out


def restart_needed(keys: list[str]) -> list[str]:
    return [k for k in keys if k not in RELOADABLE and k.split(".")[0] not in RELOADABLE]


class Reloader:
    """``apply(new)`` is the wiring's: hand each reloadable part to its owner."""

    def __init__(
        self,
        path: str,
        started: Config,
        apply: Callable[[Config], None],
        metrics: Any,
        loader: Callable[[str], Config] = load,
    ) -> None:
        self.path = path
        self.started = started  # what the datapath, sockets and listeners were built from
        self.cfg = started
        self.apply = apply
        self.metrics = metrics
        self.loader = loader

    def reload(self) -> bool:
        try:
            new = self.loader(self.path)
        except ConfigError as exc:
            log.error(
                "reload-rejected file=%s errors=%d keeping=last-good detail=%r",
                self.path,
                len(exc.errors),
                "; ".join(exc.errors),
            )
            self.metrics.reloaded(False)
            return False
        applied = [k for k in changed_keys(self.cfg, new) if k not in restart_needed([k])]
        restart = restart_needed(changed_keys(self.started, new))
        try:
            self.apply(new)
        except Exception as exc:  # a bug in the wiring must not take the agent down
            log.error("reload-rejected file=%s error=%r keeping=last-good", self.path, exc)
            self.metrics.reloaded(False)
            return False
        self.cfg = new
        self.metrics.reloaded(True, restart)
        log.info("reload-applied file=%s changed=%s", self.path, ",".join(applied) or "nothing")
        if restart:
            log.warning(
                "reload-restart-needed keys=%s hint='these keep their running values until "
                "dfagent restarts'",
                ",".join(restart),
            )
        return True
