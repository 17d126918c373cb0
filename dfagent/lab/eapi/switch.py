"""EapiSwitch: the test switch as one object — state, listeners, users, faults, timers.

sw = EapiSwitch(username="dfagent", password="secret", clock=FakeClock())
sw.start()                       # 127.0.0.1, ephemeral port: sw.url, sw.port
node = pyeapi.client.connect(**sw.connect_args(), return_node=True)
sw.stop(); sw.start()            # down and back on the same port
sw.close()
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any

from dfagent.lab.eapi.clock import Clock, FakeClock, SystemClock
from dfagent.lab.eapi.directflow import DEFAULT_CAPACITY
from dfagent.lab.eapi.rpc import RequestRecord
from dfagent.lab.eapi.server import Faults, Listener, User, listen_tcp, listen_unix
from dfagent.lab.eapi.state import SwitchState

RECORDS_KEPT = 10_000


class EapiSwitch:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "admin",
        *,
        hostname: str = "dfagent-sw1",
        clock: Clock | None = None,
        capacity: int = DEFAULT_CAPACITY,
        directflow_enabled: bool = False,
        unix_socket: str | None = None,
        tls: tuple[str, str] | None = None,
        tick_interval: float | None = None,
    ) -> None:
        """tls: (certfile, keyfile) to serve https. tick_interval: seconds between timeout
        checks in the background (default: 1 s with the system clock, none with a
        FakeClock, where every request and `state.tick()` apply them)."""
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.clock: Clock = clock or SystemClock()
        self.state = SwitchState(
            hostname=hostname,
            clock=self.clock,
            capacity=capacity,
            directflow_enabled=directflow_enabled,
        )
        self.users: dict[str, User] = {username: User(username, password, 15)}
        self.faults = Faults()
        self.unix_socket = unix_socket
        self.requests: deque[RequestRecord] = deque(maxlen=RECORDS_KEPT)
        self.internal_errors: list[str] = []
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*tls)
        if tick_interval is None and not isinstance(self.clock, FakeClock):
            tick_interval = 1.0
        self.tick_interval = tick_interval
        self._listeners: list[Listener] = []
        self._ticker: threading.Thread | None = None
        self._stop_ticking = threading.Event()

    # -- addresses -----------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}/command-api"

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for `pyeapi.client.connect(...)` reaching this switch."""
        return {
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }

    # -- life ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._listeners)

    def start(self) -> EapiSwitch:
        """Listen (again): the first start picks the port if it was 0; later starts reuse it."""
        if self.running:
            return self
        tcp, self.port = listen_tcp(self.host, self.port, self, self._tls)
        self._listeners.append(tcp)
        if self.unix_socket:
            self._listeners.append(listen_unix(self.unix_socket, self))
        if self.tick_interval and self._ticker is None:
            self._stop_ticking.clear()
            self._ticker = threading.Thread(target=self._tick_loop, daemon=True)
            self._ticker.start()
        return self

    def stop(self) -> None:
        """The switch goes down: listeners closed, open connections cut. State is kept, as
        a switch's config survives an eAPI outage; `start()` brings it back."""
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()

    def close(self) -> None:
        self.stop()
        self._stop_ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def __enter__(self) -> EapiSwitch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tick_loop(self) -> None:
        assert self.tick_interval
        while not self._stop_ticking.wait(self.tick_interval):
            self.state.tick()

    def configure(self, lines: list[str]) -> None:
        """Apply config lines as a startup-config is applied at boot (`configure`, then each
        line; indentation is not needed: sub-modes are found as the CLI finds them), then
        save them as the startup-config. Raises CommandError naming the first line the
        switch refuses; the lines before it stay applied (as on EOS)."""
        from dfagent.lab.eapi.modes import Session
        from dfagent.lab.eapi.tokens import CommandError

        with self.state.lock:
            session = Session(self.state, privilege=15)
            try:
                for line in ["enable", "configure", *lines]:
                    try:
                        session.run(line.strip())
                    except CommandError as exc:
                        raise CommandError(exc.code, f"{line.strip()!r}: {exc.error}") from None
            finally:
                session.close()
                self.state.flows.done()
            self.state.save_startup()

    # -- users and records ---------------------------------------------------------------

    def add_user(self, name: str, password: str, privilege: int = 15) -> None:
        """privilege < 15: may `enable` and show, gets 1005 for `configure`."""
        self.users[name] = User(name, password, privilege)

    def record(self, rec: RequestRecord) -> None:
        self.requests.append(rec)


def make_self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[str, str]:
    """A certificate for `tls=` (openssl CLI); returns (certfile, keyfile)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make a test certificate")
    cert, key = directory / "eapi.crt", directory / "eapi.key"
    try:
        ipaddress.ip_address(host)
        san = f"IP:{host}"
    except ValueError:
        san = f"DNS:{host}"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
