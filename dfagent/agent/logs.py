"""The agent's log lines: one event per line on stderr, ``log.format`` kv (the default) or
json. Every dfagent message starts with its event name, then ``key=value`` fields; the JSON
form splits them into members so a log pipeline needs no parser of its own."""

from __future__ import annotations

import json
import logging
import re
import sys

KV_FORMAT = "ts=%(asctime)s level=%(levelname)s component=%(name)s event=%(message)s"
# key=value, the value bare or quoted as repr() writes it
_FIELD = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        event, _, rest = msg.partition(" ")
        out: dict[str, object] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "component": record.name,
            "event": event,
        }
        for key, value in _FIELD.findall(rest):
            if value[:1] in "'\"" and value[-1:] == value[:1] and len(value) > 1:
                value = value[1:-1]
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup(level: int, fmt: str = "kv") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(KV_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
