"""Everything the test switch knows, behind one lock: identity, running config, DirectFlow
table, routing providers. The eAPI server runs each request under the lock, as EOS
serialises configuration; tests reach in through the same methods.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dfagent.lab.eapi.clock import Clock, SystemClock
from dfagent.lab.eapi.directflow import (
    DEFAULT_CAPACITY,
    CounterSource,
    FlowEntry,
    FlowObserver,
    FlowTable,
)
from dfagent.lab.eapi.opsconfig import OpsConfig
from dfagent.lab.eapi.policy import PolicyConfig
from dfagent.lab.eapi.providers import Providers, StaticProviders
from dfagent.lab.eapi.runconfig import RunningConfig


@dataclass
class VersionInfo:
    model: str = "DCS-7050SX-64"  # a 7050X: Trident2, DirectFlow in the IFP TCAM
    version: str = "4.21.3F"
    serial: str = "JPE00DFAGENT"
    mac: str = "00:1c:73:df:a0:01"
    hardware_revision: str = "01.11"
    architecture: str = "i686"


class SwitchState:
    def __init__(
        self,
        hostname: str = "dfagent-sw1",
        clock: Clock | None = None,
        capacity: int = DEFAULT_CAPACITY,
        directflow_enabled: bool = False,
        version: VersionInfo | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Clock = clock or SystemClock()
        self.booted = self.clock.now()
        self.version = version or VersionInfo()
        self.config = RunningConfig(hostname=hostname)
        self.policy = PolicyConfig()  # ACLs, PBR, traffic-policies, interfaces
        self.ops = OpsConfig()  # event handlers, mirror sessions
        self.flows = FlowTable(clock=self.clock, capacity=capacity, enabled=directflow_enabled)
        self.static = StaticProviders(self.config)
        self.providers: Providers = self.static
        self.enable_secret: str | None = None  # `enable` then needs {"cmd","input"}
        self.startup_config = ""

    def running_config(self, startup: bool = False) -> str:
        v = self.version
        header = [
            "! Command: show running-config",
            f"! device: {self.hostname} ({v.model}, EOS-{v.version})",
        ]
        return self.config.render(
            self.flows, header, self.policy.blocks() + self.ops.blocks(), startup=startup
        )

    def save_startup(self) -> None:
        """`copy running-config startup-config`: flows with `no persistent` are left out."""
        self.startup_config = self.running_config(startup=True)

    @property
    def hostname(self) -> str:
        return self.config.hostname

    # -- what tests and labs call (each takes the lock) --------------------------------------

    def tick(self) -> list[FlowEntry]:
        """Apply DirectFlow timeouts as of the clock's now (every request does this too)."""
        with self.lock:
            try:
                return self.flows.expire()
            finally:
                self.flows.done()

    def count(self, name: str, packets: int = 1, nbytes: int = 64) -> None:
        """Traffic matched flow NAME: bumps matchPackets/matchBytes, restarts its idle timer."""
        with self.lock:
            self.flows.count(name, packets, nbytes)

    def flow(self, name: str) -> FlowEntry | None:
        with self.lock:
            return self.flows.get(name)

    def add_observer(self, observer: FlowObserver) -> None:
        with self.lock:
            self.flows.observers.append(observer)

    def set_counter_source(self, source: CounterSource | None) -> None:
        """A datapath's counters (see CounterSource) instead of, or besides, count()."""
        with self.lock:
            self.flows.counter_source = source

    def set_capacity(self, capacity: int) -> None:
        with self.lock:
            self.flows.set_capacity(capacity)

    def set_providers(self, providers: Providers) -> None:
        with self.lock:
            self.providers = providers
