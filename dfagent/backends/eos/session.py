"""The one eAPI session per switch — and the only module of dfagent that imports pyeapi.

One :class:`EosSession` per switch lives as long as the agent: one pyeapi connection (https
by default, http, or the switch's Unix socket when the agent runs on the switch), kept open
between requests (pyeapi would close it after each one: see :func:`_keep_open`), and many
pins per ``runCmds`` request (the callers batch).

Credentials come from the config (user) and the environment (password, named by the config's
``password_env``) — never from the command line, where ``ps`` shows them. TLS verification is
on unless the config turns it off (pyeapi itself turns it *off* when no context is given, so a
context is always passed).

Every failure becomes an :class:`EosError` with a one-line message and a ``kind`` that names
its counter: ``command`` (1002: the switch refused a command — which one, and why),
``unconverted`` (1003: no JSON for a command), ``unauthorized`` (1005: the user may not run
it), ``auth`` (HTTP 401: wrong user or password), ``timeout``, ``unreachable``. After a
timeout, an unreachable switch or a refused login, the session backs off (doubling up to
``backoff_max``) and refuses requests until the next try is due (``backoff``: no request
was sent), so a switch that is down does not stall the agent's loop for a timeout per batch.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyeapi  # the only import of pyeapi in dfagent
import pyeapi.eapilib

DEFAULT_TIMEOUT = 10.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0

# pyeapi logs every failed request with a traceback at ERROR; the session reports each
# failure once, as one line with its kind (and counts it)
logging.getLogger("pyeapi").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Endpoint:
    name: str  # the switch's name in dfagent (logs, --switch)
    transport: str = "https"  # https | http | socket
    host: str | None = None
    port: int | None = None
    username: str = "admin"
    password: str = ""
    verify_tls: bool = True
    ca_file: str | None = None
    socket_path: str | None = None  # transport socket: None = EOS's /var/run/command-api.sock
    timeout: float = DEFAULT_TIMEOUT

    def where(self) -> str:
        if self.transport == "socket":
            return f"unix:{self.socket_path or '/var/run/command-api.sock'}"
        port = f":{self.port}" if self.port else ""
        return f"{self.transport}://{self.host}{port}"


class EosError(Exception):
    """A failed eAPI request; ``kind`` names its counter."""

    kind = "error"

    def __init__(self, switch: str, message: str) -> None:
        self.switch = switch
        super().__init__(f"switch {switch}: {message}")


class EosCommandError(EosError):
    """The switch refused a command (eAPI stops there; earlier commands took effect)."""

    def __init__(
        self,
        switch: str,
        code: int,
        index: int,
        command: str,
        errors: Sequence[str],
        message: str,
        results: Sequence[Any],
    ) -> None:
        self.code = code
        self.index = index  # into the commands the caller gave (None-free: -1 if unknown)
        self.command = command
        self.errors = list(errors)
        self.results = list(results)  # of the commands before it
        self.kind = {1002: "command", 1003: "unconverted", 1005: "unauthorized"}.get(
            code, "command"
        )
        why = "; ".join(self.errors) or message
        what = {
            1003: "has no JSON output (unconverted)",
            1005: "is not permitted for this user (unauthorized)",
        }.get(code, "was refused")
        super().__init__(switch, f"command {command!r} {what} [{code}]: {why}")


class EosAuthError(EosError):
    kind = "auth"


class EosTimeout(EosError):
    kind = "timeout"


class EosUnreachable(EosError):
    kind = "unreachable"


class EosBackoff(EosError):
    kind = "backoff"


def _keep_open(conn: Any) -> None:
    """pyeapi closes the HTTP(S) connection after every request (``send`` ends with
    ``transport.close()``), so each request would pay a TCP connect and a TLS handshake (over
    https about 50 ms against the test switch: 20 requests/s). Keep it open instead:
    http.client reconnects by itself when the switch closed it (``Connection: close``), and
    :meth:`EosSession._execute` retries once on a new connection when a kept-open one was
    closed between two requests."""
    transport = getattr(conn, "transport", None)
    if transport is None:
        return
    conn.dfagent_close = transport.close
    transport.close = lambda: None


def tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


class EosSession:
    def __init__(
        self,
        ep: Endpoint,
        clock: Callable[[], float] = time.monotonic,
        backoff_min: float = BACKOFF_MIN,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.ep = ep
        self.clock = clock
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._conn: Any = None
        self._lock = threading.Lock()
        self._delay = 0.0
        self.down_until = 0.0  # no request before this (clock) after a failure
        self.last_error: EosError | None = None
        self.counters: dict[str, int] = {
            "requests": 0,
            "commands": 0,
            "connects": 0,
            "reconnects": 0,  # a kept-open connection the switch had closed, opened again
            "error:command": 0,
            "error:unconverted": 0,
            "error:unauthorized": 0,
            "error:auth": 0,
            "error:timeout": 0,
            "error:unreachable": 0,
            "error:backoff": 0,
        }

    # ── the connection ──────────────────────────────────────────────────────────
    def _connect(self) -> Any:
        ep = self.ep
        self.counters["connects"] += 1
        if ep.transport == "socket":
            kw: dict[str, Any] = {"timeout": ep.timeout}
            if ep.socket_path:
                kw["path"] = ep.socket_path
            return pyeapi.client.make_connection("socket", **kw)
        ctx = tls_context(ep.verify_tls, ep.ca_file) if ep.transport == "https" else None
        conn = pyeapi.client.connect(
            transport=ep.transport,
            host=ep.host,
            port=ep.port,
            username=ep.username,
            password=ep.password,
            timeout=ep.timeout,
            context=ctx,
        )
        _keep_open(conn)
        return conn

    def _drop(self) -> None:
        """Forget the connection (closing its socket): the next request makes a new one."""
        conn, self._conn = self._conn, None
        close = getattr(conn, "dfagent_close", None)
        if close is not None:
            close()

    @property
    def up(self) -> bool:
        """False while backing off after a failure to reach the switch."""
        return self.clock() >= self.down_until

    # ── requests ────────────────────────────────────────────────────────────────
    def run(self, cmds: Sequence[str], fmt: str = "json") -> list[Any]:
        """Run commands (``enable`` is put first); one result per given command."""
        with self._lock:
            now = self.clock()
            if now < self.down_until:
                self.counters["error:backoff"] += 1
                raise EosBackoff(
                    self.ep.name,
                    f"not tried: unreachable at the last try, next in "
                    f"{self.down_until - now:.1f}s ({self.last_error})",
                )
            if self._conn is None:
                self._conn = self._connect()
            self.counters["requests"] += 1
            self.counters["commands"] += len(cmds)
            try:
                res = self._execute(["enable", *cmds], fmt)
            except EosError as exc:
                self.counters[f"error:{exc.kind}"] += 1
                self.last_error = exc
                if isinstance(exc, EosTimeout | EosUnreachable | EosAuthError):
                    self._drop()  # a fresh connection at the next try
                    self._delay = min(self.backoff_max, max(self.backoff_min, self._delay * 2))
                    self.down_until = self.clock() + self._delay
                raise
            self._delay = 0.0
            self.down_until = 0.0
            return res[1:]

    def config(self, cmds: Sequence[str]) -> list[Any]:
        """Commands in configuration mode (``configure`` … ``end``); results of ``cmds``."""
        try:
            return self.run(["configure", *cmds, "end"])[1:-1]
        except EosCommandError as exc:
            exc.index -= 1  # the index into ``cmds``, not past our "configure"
            exc.results = exc.results[1:]
            raise

    def _execute(self, cmds: list[str], fmt: str) -> list[Any]:
        conn = self._conn
        for attempt in (1, 2):
            conn.socket_error = None
            reused = getattr(conn, "dfagent_used", 0) > 0
            try:
                reply = conn.execute(cmds, encoding=fmt)
            except pyeapi.eapilib.CommandError as exc:
                conn.dfagent_used = getattr(conn, "dfagent_used", 0) + 1
                raise self._command_error(exc, cmds) from None
            except pyeapi.eapilib.ConnectionError as exc:
                err = self._connection_error(exc, conn)
                if attempt == 1 and reused and isinstance(err, EosUnreachable):
                    # the switch closed the kept-open connection between two requests: try
                    # once on a new one (our config commands are idempotent)
                    self.counters["reconnects"] += 1
                    conn.dfagent_used = 0
                    close = getattr(conn, "dfagent_close", None)
                    if close is not None:
                        close()
                    continue
                raise err from None
            conn.dfagent_used = getattr(conn, "dfagent_used", 0) + 1
            return list(reply.get("result", []))
        raise AssertionError("unreachable")  # pragma: no cover

    def _command_error(self, exc: Any, cmds: list[str]) -> EosError:
        code = int(exc.error_code)
        out = list(exc.output or [])
        errors: list[str] = []
        if out and isinstance(out[-1], dict):
            errors = [str(e) for e in out[-1].get("errors", [])]
        # eAPI answers up to and including the failing command: it is the last one
        index = len(out) - 1 if out else -1
        command = cmds[index] if 0 <= index < len(cmds) else "?"
        results = out[:index] if index > 0 else []
        # index - 1: the caller did not write the "enable" we put first
        return EosCommandError(
            self.ep.name, code, index - 1, command, errors, str(exc.error_text), results[1:]
        )

    def _connection_error(self, exc: Any, conn: Any) -> EosError:
        sock_err = getattr(conn, "socket_error", None)
        msg = str(getattr(exc, "message", exc))
        where = self.ep.where()
        if isinstance(sock_err, TimeoutError):
            return EosTimeout(self.ep.name, f"no answer from {where} in {self.ep.timeout:g}s")
        if sock_err is None and msg.startswith("Unauthorized"):
            return EosAuthError(
                self.ep.name,
                f"{where} refused user {self.ep.username!r} (HTTP 401): check the username "
                "and the password in the environment variable the config names",
            )
        if isinstance(sock_err, ssl.SSLCertVerificationError):
            return EosUnreachable(
                self.ep.name,
                f"TLS certificate of {where} not trusted ({sock_err.verify_message}): give "
                "its CA (tls_ca) or, in a lab only, verify_tls: false",
            )
        if sock_err is not None:
            why = getattr(sock_err, "strerror", None) or str(sock_err)
            return EosUnreachable(self.ep.name, f"cannot reach {where}: {why}")
        return EosUnreachable(self.ep.name, f"{where}: {msg}")
