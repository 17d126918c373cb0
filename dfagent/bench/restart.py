"""A restart at scale in the middle of a drain and a BGP-down: do the pins hold?

On the resilient-ecmp lab, for each mode on a fresh lab:

1. hold N real connections (v4 and v6) through ``lb``; with the agent, load P synthetic
   pinned flows into lb's conntrack (ESTABLISHED entries to the VIPs carrying the agent's
   next-hop marks, spread over s1, s2 and s3 and both families, as ``bench scale`` loads
   them). In map mode each synthetic flow also gets its pin-map element (``pin4``/``pin6``
   → ``jump pin_<slot>``), as the map pinner writes an element *and* the entry's mark for
   every mirrored SYN: a restart must keep both, and the start must not be slowed by them;
2. with a request on every real connection every 100 ms (from here to the end), drain s1
   and SIGKILL the agent right after the drain is issued; take s2's BGP session down while
   the agent is down (s2 keeps serving); once lb's routes are via s3 alone, start the agent
   again.

Before the events, the agent is restarted twice more (SIGKILL, no traffic, no events), to tell
what the pins and what the events cost a restart: once before the synthetic pins are loaded
(``baseline``) and once after (``quiet``).

Figures per mode: broken real connections (reset, silence or another server at any round
trip); pins lost (entries carrying a dfagent mark before the kill − after the restart, per
next hop; map mode: pin-map elements too); ready (from the launch to the agent's ``ready``
log line, and the line's own split: the process before the first pass, the first pass);
until the kernel's ``nh4``/``nh6`` maps hold exactly the new ECMP set (s3) while s1's and
s2's marks keep their rules (a watcher polling in lb's namespace every 50 ms; its own CPU
time is reported).

Modes: ``ecmp`` (plain multipath, no agent: the baseline), ``kernel``, ``map``.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dfagent.bench.agent import ReadyLine, as_installed, ready_lines
from dfagent.bench.pcc import PORT, SERVERS, VIP4, VIP6, Holder, PccBench, _dfagent
from dfagent.bench.scale import conntrack_max, load_conntrack
from dfagent.lab import runner
from dfagent.lab.errors import LabError

MODES = ("ecmp", "kernel", "map")
PINNED = ("s1", "s2", "s3")  # the synthetic pins' next hops (the ECMP set before the events)
AFTER = frozenset({"s3"})  # the ECMP set after drain s1 + s2 BGP down
READY_TARGET_S = 1.0
MAP_TIMEOUT = 3600  # map mode's element timeout: longer than a run, so lost means removed
CHUNK = 5_000  # map elements per nft statement
_MARK = re.compile(rb"\bmark=(\d+)")


class Traffic:
    """A request on every held connection every 100 ms, in a thread, until :meth:`stop`
    (back-to-back one-second ``traffic`` calls: no gap longer than one reply)."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.broken = 0
        self.rounds = 0
        self.alive = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                res = self.holder.ask("traffic", seconds=1.0, interval=0.1)
                self.broken += int(res["broken_now"])
                self.rounds += int(res["rounds"])
                self.alive = int(res["alive"])
        except (LabError, OSError, ValueError) as exc:
            self.error = exc

    def halt(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def stop(self) -> None:
        self.halt()
        if self.error is not None:
            raise LabError(f"traffic: {self.error}")


class RestartBench(PccBench):
    def __init__(self, connections: int, pins: int = 100_000, log: Any = print) -> None:
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.pins = pins
        self.namespaces: list[str] = []  # every namespace a mode's lab made
        self.restarts = 0
        self.watcher: subprocess.Popen[str] | None = None

    def _lab_up(self) -> None:
        super()._lab_up()
        assert self.state is not None
        self.namespaces += self.state.namespaces.values()

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv(mode)
        return argv + (["--timeout", str(MAP_TIMEOUT)] if mode == "map" else [])

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        # as an installed agent starts: with bytecode caches (the restart is timed)
        return super()._spawn(name, argv, env or as_installed())

    # --- what the kernel holds ----------------------------------------------------------
    def _slots(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(server, family) → (slot, mark) from the agent's status."""
        out = self._on("lb", _dfagent("linux", "status", "--json", "--no-count",
                                      "--state-dir", self._state_dir()), check=False)  # fmt: skip
        by_gw = {v[0]: s for s, v in SERVERS.items()}
        by_dev = {v[2]: s for s, v in SERVERS.items()}
        slots = {}
        for nh in json.loads(out or "{}").get("nexthops", []):
            fam = int(nh["family"])
            server = by_gw.get(nh["gateway"]) if fam == 4 else by_dev.get(nh["ifname"])
            if server is not None and nh.get("mark") not in (None, "?"):
                slots[(server, fam)] = (int(nh["table"]), int(nh["mark"], 16))
        missing = [(s, f) for s in PINNED for f in (4, 6) if (s, f) not in slots]
        if missing:
            raise LabError(f"the agent has no mark for {missing}")
        return slots

    def _marked(self, slots: dict[tuple[str, int], tuple[int, int]]) -> dict[str, int]:
        """Conntrack entries carrying dfagent's mark flag, per next hop ("other": a mark no
        known next hop owns), both families."""
        from dfagent.core.marks import MarkSpace

        space = MarkSpace()
        by_slot = {slot: f"{s}/v{f}" for (s, f), (slot, _) in slots.items()}
        flag = space.flag
        out: Counter[str] = Counter()
        for fam in ("ipv4", "ipv6"):
            argv = ["conntrack", "-L", "-f", fam, "-m", f"{flag:#x}/{flag:#x}"]
            assert self.state is not None
            proc = subprocess.run(runner.exec_argv(self.state, "lb", argv),
                                  capture_output=True, timeout=600)  # fmt: skip
            for m in _MARK.finditer(proc.stdout):
                slot = space.slot(int(m.group(1)))
                out[by_slot.get(slot, "other") if slot is not None else "other"] += 1
        return dict(sorted(out.items()))

    def _map_elements(self) -> int:
        return self._count_pins("map")

    def _wait_pinned(
        self, slots: dict[tuple[str, int], tuple[int, int]], want: int, timeout: float = 60
    ) -> float:
        """Seconds until ``want`` flows have a map element and a marked conntrack entry."""
        t0 = time.monotonic()
        while True:
            elems, marked = self._map_elements(), sum(self._marked(slots).values())
            if elems >= want and marked >= want:
                return round(time.monotonic() - t0, 1)
            if time.monotonic() - t0 > timeout:
                raise LabError(f"{elems} map elements, {marked} marked entries, not {want}")
            time.sleep(0.3)

    # --- the synthetic pins -------------------------------------------------------------
    def _synthetic(self, slots: dict[tuple[str, int], tuple[int, int]]) -> Iterator[Any]:
        """(src, dst, sport, dport, mark, slot) of the P synthetic flows: families
        alternate, next hops s1, s2, s3 in turn; sources no lab node uses."""
        for i in range(self.pins):
            fam = 4 if i % 2 == 0 else 6
            server = PINNED[(i // 2) % len(PINNED)]
            slot, mark = slots[(server, fam)]
            if fam == 4:
                src, dst = f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}", VIP4
            else:
                src, dst = f"fd00:99::{i >> 16:x}:{i & 0xFFFF:x}", VIP6
            yield src, dst, 1024 + i % 60000, PORT, mark, slot

    def _load_pins(self, mode: str, slots: dict[tuple[str, int], tuple[int, int]]) -> float:
        from dfagent.backends.linux.ruleset import pin_element, render_elements

        assert self.state is not None
        state = self.state
        run_dir = Path(state.run_dir)
        t0 = time.monotonic()
        load_conntrack(
            lambda argv: runner.exec_argv(state, "lb", argv),
            run_dir / "ct.txt",
            (f[:5] for f in self._synthetic(slots)),
        )
        if mode == "map":
            maps: dict[str, list[str]] = {"pin4": [], "pin6": []}
            for src, dst, sport, dport, _, slot in self._synthetic(slots):
                name, elem = pin_element(src, dst, sport, dport, slot)
                maps[name].append(elem)
            path = run_dir / "pins.nft"
            with open(path, "w") as f:
                for name, elems in maps.items():
                    for k in range(0, len(elems), CHUNK):
                        f.write(render_elements("add", name, elems[k : k + CHUNK]))
            self._on("lb", ["nft", "-f", str(path)])
        return time.monotonic() - t0

    # --- the restart --------------------------------------------------------------------
    def _watch(self, want: set[int], keep: Iterable[int]) -> subprocess.Popen[str]:
        """The watcher in lb's namespace (see :func:`watch_nexthops`), once it polls; its
        stderr in the lab's run directory. Stopped by :meth:`_lab_down` if still running."""
        assert self.state is not None
        code = (f"from dfagent.bench.restart import watch_nexthops; "
                f"watch_nexthops({sorted(want)!r}, {sorted(keep)!r}, 120.0)")  # fmt: skip
        err_path = Path(self.state.run_dir) / "watcher.err"
        with open(err_path, "ab") as err:
            proc = subprocess.Popen(
                runner.exec_argv(self.state, "lb", [sys.executable, "-c", code]),
                stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        self.watcher = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and line.strip() != "watching":  # anything a library prints first
            line = proc.stdout.readline()
        if not line:
            tail = err_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"the next-hop watcher did not start: {' '.join(tail) or '?'}")
        return proc

    def _lab_down(self) -> None:
        if self.watcher is not None and self.watcher.poll() is None:
            self.watcher.kill()
            self.watcher.wait(10)
        self.watcher = None
        super()._lab_down()

    def _restart(
        self, mode: str, want: set[int] | None = None, keep: Iterable[int] = ()
    ) -> dict[str, Any]:
        """SIGKILL the agent (if it runs) and start it again: seconds from the launch to its
        ready line (and the line's split); with ``want``, also to the kernel's next-hop maps
        holding exactly ``want`` (and what the killed agent had left in them)."""
        assert self.state is not None
        if self.agent is not None:
            self.agent.send_signal(signal.SIGKILL)
            self.agent.wait(10)
        watcher = self._watch(want, keep) if want is not None else None
        self.restarts += 1
        name = f"agent-{mode}-restart{self.restarts}"
        log_path = Path(self.state.run_dir) / f"{name}.log"
        busy0 = _cpu_times()
        t_wall, t_mono = time.time(), time.monotonic()
        self.agent = self._spawn(name, self._launch_argv(mode))
        agent = self.agent
        end = t_mono + 120
        lines: list[ReadyLine] = []
        while not lines:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            lines = ready_lines(text)
            if not lines:
                if agent.poll() is not None:
                    raise LabError(f"the restarted agent exited ({agent.returncode}): {log_path}")
                if time.monotonic() > end:
                    raise LabError(f"no ready line within 120 s: {log_path}")
                time.sleep(0.01)
        busy1 = _cpu_times()
        ready = lines[0]
        out: dict[str, Any] = {
            "ready_s": round(ready.at - t_wall, 3),
            "first_pass_ms": ready.first_pass_ms,
            "before_first_pass_ms": ready.before_first_pass_ms,
            "ready_cpu_ms": ready.cpu_ms,  # the new process's own CPU until ready
            # the whole machine (every session on it) from the launch to the ready line
            "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1), 1),
        }
        if watcher is not None:
            text, _ = watcher.communicate(timeout=150)
            seen = json.loads(text.strip().splitlines()[-1])
            at = seen["matched"]
            out["marks_match_s"] = round(at - t_mono, 3) if at is not None else None
            out["slots_left"], out["slots_last"] = seen["first"], seen["last"]
            out["watcher_cpu_s"] = seen["cpu_s"]
        return out

    def run_mode(self, mode: str) -> dict[str, Any]:  # type: ignore[override]
        if mode not in MODES:
            raise LabError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        with_agent = mode != "ecmp"
        holder: Holder | None = None
        traffic: Traffic | None = None
        out: dict[str, Any] = {}
        try:  # a stop (SIGTERM) while the lab comes up also takes it down
            self._lab_up()
            assert self.state is not None
            holder = Holder(self.state)
            if with_agent:
                self._start_agent(mode)
            opened = holder.ask("open", addrs=[VIP4, VIP6], port=PORT, count=self.n)
            out["opened"], out["by_server"] = opened["opened"], opened["by_server"]
            slots: dict[tuple[str, int], tuple[int, int]] = {}
            if with_agent:
                slots = self._slots()
                if mode == "map":  # the mirror path pins asynchronously: a kill before its
                    # pins are written leaves connections unpinned (mirror loss: not this bench)
                    out["pin_wait_s"] = self._wait_pinned(slots, out["opened"])
                # the baseline, same lab: a restart with no synthetic pins and no events
                out["baseline"] = self._restart(mode)
                out["load_s"] = round(self._load_pins(mode, slots), 1)
                out["marked_before"] = self._marked(slots)
                if mode == "map":
                    out["elements_before"] = self._map_elements()
                # the same pins, no events, no traffic: what the pins alone cost a restart
                out["quiet"] = self._restart(mode)
                self.log(f"{mode}: {out['opened']} connections {out['by_server']}, "
                         f"marked entries {out['marked_before']}")  # fmt: skip
            traffic = Traffic(holder)
            time.sleep(1.0)  # traffic before the events: every connection answers
            t0 = time.monotonic()
            self._drain().drain(SERVERS["s1"][:2])
            if self.agent is not None:
                self.agent.send_signal(signal.SIGKILL)
                self.agent.wait(10)
                self.agent = None
                out["kill_after_drain_ms"] = round((time.monotonic() - t0) * 1000, 1)
            self._apply("s2 BGP down", mode, AFTER)
            self._wait_servers(AFTER)
            out["agent_down_s"] = round(time.monotonic() - t0, 2) if with_agent else None
            if with_agent:
                want = {slots[(s, f)][0] for s in AFTER for f in (4, 6)}
                keep = {slot for slot, _ in slots.values() if slot not in want}
                out.update(self._restart(mode, want, keep))
                names = {slot: f"{s}/v{f}" for (s, f), (slot, _) in slots.items()}
                for k in ("slots_left", "slots_last"):
                    out[k] = [names.get(x, hex(x)) for x in out[k] or []]
            time.sleep(3.0)  # traffic after the restart (or the events)
            traffic.stop()
            out["broken"], out["rounds"] = traffic.broken, traffic.rounds
            traffic = None
            if with_agent:
                out["marked_after"] = self._marked(slots)
                before, after = out["marked_before"], out["marked_after"]
                out["lost"] = sum(before.values()) - sum(after.values())
                out["lost_by_nexthop"] = {
                    k: before[k] - after.get(k, 0) for k in before if before[k] != after.get(k, 0)
                }
                if mode == "map":
                    out["elements_after"] = self._map_elements()
                    out["elements_lost"] = out["elements_before"] - out["elements_after"]
            self.log(f"{mode}: {_line(out)}")
        finally:
            if traffic is not None:  # a failure mid-run: the holder is free before its quit
                traffic.halt()
            if holder is not None:
                holder.close()
            self._lab_down()
        return out

    def run(self, modes: list[str]) -> dict[str, Any]:
        with conntrack_max(int(self.pins * 1.2) + 20_000):
            results = self.per_mode(modes, MODES, self.run_mode)
        return {
            "connections": self.n,
            "pins": self.pins,
            "ready_target_s": READY_TARGET_S,
            "modes": results,
        }


def watch_nexthops(want: list[int], keep: list[int], timeout: float) -> None:
    """Inside lb's namespace: poll every 50 ms until the slots in the ``nh4``/``nh6`` maps are
    exactly ``want`` and every slot of ``keep`` (pinned next hops out of the set) still has
    its ip rule; print ``{"matched": time.monotonic() or null, "first": slots seen first
    (what the killed agent left), "last": slots seen last, "cpu_s": the polling's CPU}``.
    Printed "watching" first, once polling can start. Run by :meth:`RestartBench._watch`."""
    from dfagent.backends.linux.netlink import Netlink
    from dfagent.backends.linux.nft import Nft, NftError
    from dfagent.backends.linux.ruleset import verdict_slot

    nft, nl = Nft(), Netlink()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru.ru_utime + ru.ru_stime  # the polling's CPU, not the imports'
    print("watching", flush=True)
    end = time.monotonic() + timeout
    first: list[int] | None = None
    matched = None
    try:
        while time.monotonic() < end:
            try:
                got = {verdict_slot(v) for m in ("nh4", "nh6") for _, v in nft.map_elements(m)}
            except NftError:  # the table is being replaced
                got = set()
            slots = sorted(s for s in got if s is not None)
            first = slots if first is None else first
            if slots == sorted(want) and set(keep) <= {r.table for r in nl.owned_rules()}:
                matched = time.monotonic()
                break
            time.sleep(0.05)
    finally:
        nl.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = round(ru.ru_utime + ru.ru_stime - cpu0, 3)
    print(json.dumps({"matched": matched, "first": first, "last": slots, "cpu_s": cpu}))


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _split(r: dict[str, Any]) -> str:
    return (f"{r['ready_s']} s = {r['before_first_pass_ms']} + {r['first_pass_ms']} ms, "
            f"CPU {r['ready_cpu_ms']} ms, machine {r['machine_busy_pct']} % busy")  # fmt: skip


def _line(r: dict[str, Any]) -> str:
    text = f"{r['broken']} of {r['opened']} broken"
    if "lost" in r:
        text += (f"; pins lost {r['lost']} of {sum(r['marked_before'].values())}; ready "
                 f"{_split(r)} (quiet: {_split(r['quiet'])}; no synthetic pins: "
                 f"{_split(r['baseline'])}); marks match {r['marks_match_s']} s")  # fmt: skip
    if "elements_lost" in r:
        text += f"; map elements lost {r['elements_lost']} of {r['elements_before']}"
    return text


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['connections']} connections (a request on each every 100 ms) + "
        f"{result['pins']:,} synthetic pins; drain s1, SIGKILL the agent, s2 BGP down, start "
        f"the agent (ready target <= {result['ready_target_s']} s; ready = process before the "
        "first pass + first pass; quiet: the same pins, no traffic, no events; 0 pins: before "
        "the synthetic pins; each on the same lab)",
        f"{'mode':7} {'broken':>9} {'pins lost':>14} {'elems lost':>14} {'ready s':>8} "
        f"{'quiet':>6} {'0 pins':>7} {'process ms':>10} {'1st pass ms':>11} {'marks s':>8}",
    ]
    notes = []
    for mode, r in result["modes"].items():
        lost = f"{r['lost']}/{sum(r['marked_before'].values())}" if "lost" in r else "-"
        elems = f"{r['elements_lost']}/{r['elements_before']}" if "elements_lost" in r else "-"
        base = r["baseline"]["ready_s"] if "baseline" in r else "-"
        quiet = r["quiet"]["ready_s"] if "quiet" in r else "-"
        lines.append(
            f"{mode:7} {r['broken']:>4}/{r['opened']:<4} {lost:>14} {elems:>14} "
            f"{r.get('ready_s', '-')!s:>8} {quiet!s:>6} {base!s:>7} "
            f"{r.get('before_first_pass_ms', '-')!s:>10} "
            f"{r.get('first_pass_ms', '-')!s:>11} {r.get('marks_match_s', '-')!s:>8}"
        )
        if "slots_left" in r:
            notes.append(
                f"  {mode}: killed {r['kill_after_drain_ms']} ms after the drain was issued, "
                f"down {r['agent_down_s']} s; next-hop maps as the killed agent left them: "
                f"{' '.join(r['slots_left']) or '-'}, after the restart: "
                f"{' '.join(r['slots_last']) or '-'}; the machine was {r['machine_busy_pct']} "
                f"% busy during the restart (quiet {r['quiet']['machine_busy_pct']} %, 0 pins "
                f"{r['baseline']['machine_busy_pct']} %)"
            )
    return "\n".join(lines + notes)
