"""Operations config of the test switch: event handlers (the agent's resync hooks) and
mirror sessions (SYNs mirrored in GRE to the agents), kept and printed as EOS does.

`dfagent hooks eos` prints event-handler config for operators to paste; the switch accepting
it checks that text. Mirror sessions are stored for a lab to act on (`state.ops.monitors`):
in a lab, the session's GRE destination is where mirrored SYNs are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfagent.lab.eapi.directflow import IPAddress
from dfagent.lab.eapi.modebase import Mode
from dfagent.lab.eapi.tokens import Tokens, incomplete


@dataclass
class EventHandler:
    trigger: str | None = None  # "on-logging" | "on-intf"
    trigger_interface: str | None = None
    trigger_what: str | None = None  # operstatus | ip | ip6
    poll_interval: int | None = None
    regex: str | None = None
    action: str | None = None  # bash command line
    delay: int | None = None
    asynchronous: bool = False
    timeout: int | None = None

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.trigger == "on-logging":
            out.append("   trigger on-logging")
            if self.poll_interval is not None:
                out.append(f"      poll interval {self.poll_interval}")
            if self.regex is not None:
                out.append(f"      regex {self.regex}")
        elif self.trigger == "on-intf":
            out.append(f"   trigger on-intf {self.trigger_interface} {self.trigger_what}")
        if self.action is not None:
            out.append(f"   action bash {self.action}")
        if self.delay is not None:
            out.append(f"   delay {self.delay}")
        if self.asynchronous:
            out.append("   asynchronous")
        if self.timeout is not None:
            out.append(f"   timeout {self.timeout}")
        return out


@dataclass
class MonitorSession:
    sources: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # intf: dir, acl
    gre_source: IPAddress | None = None
    gre_destination: IPAddress | None = None
    destination_interface: str | None = None

    def lines(self, name: str) -> list[str]:
        out = []
        for intf, (direction, acl) in self.sources.items():
            line = f"monitor session {name} source {intf} {direction}"
            out.append(line + (f" ip access-group {acl}" if acl else ""))
        if self.gre_destination is not None:
            out.append(
                f"monitor session {name} destination tunnel mode gre source {self.gre_source} "
                f"destination {self.gre_destination}"
            )
        if self.destination_interface is not None:
            out.append(f"monitor session {name} destination {self.destination_interface}")
        return out


@dataclass
class OpsConfig:
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    monitors: dict[str, MonitorSession] = field(default_factory=dict)

    def blocks(self) -> list[list[str]]:
        out = [[f"event-handler {name}", *h.lines()] for name, h in sorted(self.handlers.items())]
        lines: list[str] = []
        for name, m in sorted(self.monitors.items()):
            lines += m.lines(name)
        if lines:
            out.append(lines)
        return out


def monitor_command(t: Tokens, ops: OpsConfig, negate: bool) -> None:
    """`monitor session S source INTF [rx|tx|both] [ip access-group ACL]`,
    `monitor session S destination tunnel mode gre source A destination B`,
    `monitor session S destination INTF`, `no monitor session S [source INTF|destination]`."""
    t.keyword("session")
    name = t.name()
    if negate and not t:
        ops.monitors.pop(name, None)
        return
    where = t.keyword("source", "destination")
    if where == "source":
        intf = t.interface()
        if negate:
            t.end()
            if name in ops.monitors:
                ops.monitors[name].sources.pop(intf, None)
            return
        direction = t.accept("rx", "tx", "both") or "both"
        acl = None
        if t.accept("ip"):
            t.keyword("access-group")
            acl = t.name()
        t.end()
        ops.monitors.setdefault(name, MonitorSession()).sources[intf] = (direction, acl)
        return
    if negate:
        t.end()
        m = ops.monitors.get(name)
        if m is not None:
            m.gre_source = m.gre_destination = None
            m.destination_interface = None
        return
    if t.accept("tunnel"):
        t.keyword("mode")
        t.keyword("gre")
        t.keyword("source")
        src = t.address(4)
        t.keyword("destination")
        dst = t.address(4)
        t.end()
        m = ops.monitors.setdefault(name, MonitorSession())
        m.gre_source, m.gre_destination, m.destination_interface = src, dst, None
        return
    intf = t.interface()
    t.end()
    m = ops.monitors.setdefault(name, MonitorSession())
    m.destination_interface, m.gre_source, m.gre_destination = intf, None, None


class EventHandlerMode(Mode):
    KEYWORDS = ("trigger", "action", "delay", "asynchronous", "timeout")
    NO_KEYWORDS = KEYWORDS

    def __init__(self, handler: EventHandler) -> None:
        self.h = handler

    def handle(self, t: Tokens, s: object) -> Mode | None:
        h = self.h
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "asynchronous":
            t.end()
            h.asynchronous = not negate
            return None
        if word in ("delay", "timeout"):
            value = None if negate and not t else t.integer(0, 4294967295)
            t.end()
            setattr(h, word, None if negate else value)
            return None
        if word == "action":
            t.keyword("bash")
            command = " ".join(t.words[t.pos :])
            if not command and not negate:
                raise incomplete()
            t.pos = len(t.words)
            h.action = None if negate else command
            return None
        if negate:
            t.end()
            h.trigger = h.trigger_interface = h.trigger_what = h.regex = None
            return None
        kind = t.keyword("on-logging", "on-intf")
        if kind == "on-intf":
            h.trigger_interface = t.interface()
            h.trigger_what = t.keyword("operstatus", "ip", "ip6")
            t.end()
            h.trigger = kind
            return None
        t.end()
        h.trigger = kind
        return LoggingTriggerMode(h)


class LoggingTriggerMode(Mode):
    KEYWORDS = ("poll", "regex")
    NO_KEYWORDS = KEYWORDS

    def __init__(self, handler: EventHandler) -> None:
        self.h = handler

    def handle(self, t: Tokens, s: object) -> Mode | None:
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "poll":
            t.keyword("interval")
            value = None if negate and not t else t.integer(1, 4294967295)
            t.end()
            self.h.poll_interval = None if negate else value
            return None
        regex = " ".join(t.words[t.pos :])
        if not regex and not negate:
            raise incomplete()
        t.pos = len(t.words)
        self.h.regex = None if negate else regex
        return None
