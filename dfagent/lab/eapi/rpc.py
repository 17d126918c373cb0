"""eAPI's JSON-RPC 2.0 layer: one `runCmds` request in, one response object out.

Wire format from the field notes and pyeapi: params `version` (1 or "latest"), `cmds`
(strings or {"cmd", "input"}), `format` json|text, optional `autoComplete`,
`expandAliases`, `timestamps`; positional params `[version, cmds, format]` as jsonrpclib
sends them. Unknown top-level keys are ignored; an unknown *param* is refused the way EOS
refuses it (pyeapi looks for "unexpected keyword argument"). A failing command stops the
request: error 1002/1003/1005 with the earlier results and the failure's `errors` in
`data`.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dfagent.lab.eapi.modes import Session
from dfagent.lab.eapi.state import SwitchState
from dfagent.lab.eapi.tokens import CommandError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_EXCEPTION = 1001

KNOWN_PARAMS = ("version", "cmds", "format", "autoComplete", "expandAliases", "timestamps")


@dataclass
class RequestRecord:
    """What a client sent, for tests that check batching (one request, many flows)."""

    user: str
    cmds: list[str]
    format: str
    error_code: int | None  # None: every command succeeded


def _error(req_id: Any, code: int, message: str, data: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": err}


class BadParams(Exception):
    pass


@dataclass
class Params:
    cmds: list[tuple[str, str | None]]  # command, its input
    text: bool
    auto_complete: bool
    timestamps: bool


def _params(raw: Any) -> Params:
    """The runCmds params, or BadParams."""
    if isinstance(raw, list):  # positional: runCmds(version, cmds[, format])
        if not 2 <= len(raw) <= 3:
            raise BadParams("runCmds() takes 2 or 3 positional arguments")
        raw = dict(zip(("version", "cmds", "format"), raw, strict=False))
    if not isinstance(raw, dict):
        raise BadParams("params must be an object")
    for key in raw:
        if key not in KNOWN_PARAMS:
            raise BadParams(f"runCmds() got an unexpected keyword argument '{key}'")
    version = raw.get("version")
    ok_version = version == "latest" or (
        isinstance(version, int) and not isinstance(version, bool) and version >= 1
    )
    if not ok_version:
        raise BadParams(f'invalid version {version!r}: 1 or "latest"')
    fmt = raw.get("format") or "json"
    if fmt not in ("json", "text"):
        raise BadParams(f"invalid format {fmt!r}: json or text")
    cmds = raw.get("cmds")
    if not isinstance(cmds, list) or not cmds:
        raise BadParams("cmds must be a non-empty list")
    out: list[tuple[str, str | None]] = []
    for c in cmds:
        if isinstance(c, str):
            out.append((c, None))
        elif isinstance(c, dict) and isinstance(c.get("cmd"), str):
            inp = c.get("input")
            if inp is not None and not isinstance(inp, str):
                raise BadParams("a command's input must be a string")
            out.append((c["cmd"], inp))
        else:
            raise BadParams(f'invalid command {c!r}: a string or {{"cmd", "input"}}')
    return Params(
        cmds=out,
        text=fmt == "text",
        auto_complete=bool(raw.get("autoComplete", False)),
        timestamps=bool(raw.get("timestamps", False)),
    )


def handle(
    state: SwitchState,
    body: bytes,
    user: str = "admin",
    privilege: int = 15,
    record: Callable[[RequestRecord], None] | None = None,
    internal_error: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(None, PARSE_ERROR, "Parse error")
    if not isinstance(req, dict):
        return _error(None, INVALID_REQUEST, "Invalid request")
    req_id = req.get("id")
    if req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
        return _error(req_id, INVALID_REQUEST, "Invalid request")
    if req["method"] != "runCmds":
        return _error(req_id, METHOD_NOT_FOUND, f"Method not found: {req['method']}")
    try:
        params = _params(req.get("params"))
    except BadParams as exc:
        return _error(req_id, INVALID_PARAMS, f"Invalid params: {exc}")

    results: list[dict[str, Any]] = []
    failure: tuple[int, str, str] | None = None
    with state.lock:
        session = Session(
            state, privilege=privilege, auto_complete=params.auto_complete, text=params.text
        )
        try:
            for i, (cmd, inp) in enumerate(params.cmds):
                try:
                    started = time.time()
                    if i == 0:  # timeouts due by now apply before anything is (re)committed
                        state.flows.expire()
                    result = session.run(cmd, inp)
                    if params.timestamps:  # as EOS: when and how long, per command
                        result["_meta"] = {
                            "execStartTime": round(started, 6),
                            "execDuration": round(time.time() - started, 6),
                        }
                    results.append(result)
                except CommandError as exc:
                    failure = (i, exc.summary, exc.error)
                    code = exc.code
                    break
                except Exception:  # a bug in the test switch: loud, never a silent pass
                    tb = traceback.format_exc()
                    if internal_error is not None:
                        internal_error(tb)
                    print(tb, file=sys.stderr)
                    failure = (i, "internal exception", "Command raised an internal exception")
                    code = INTERNAL_EXCEPTION
                    break
        finally:
            session.close()
            state.flows.done()
    if record is not None:
        record(
            RequestRecord(
                user=user,
                cmds=[c for c, _ in params.cmds],
                format="text" if params.text else "json",
                error_code=None if failure is None else code,
            )
        )
    if failure is None:
        return {"jsonrpc": "2.0", "id": req_id, "result": results}
    i, summary, error = failure
    cmds = params.cmds
    message = f"CLI command {i + 1} of {len(cmds)} '{cmds[i][0]}' failed: {summary}"
    return _error(req_id, code, message, results + [{"errors": [error]}])
