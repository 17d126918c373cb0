"""The eAPI test switch as fixtures: one switch per test on an ephemeral port.

    def test_x(eapi_switch):
        node = pyeapi.client.connect(**eapi_switch.connect_args(), return_node=True)
        eapi_switch.clock.advance(301)      # FakeClock: DirectFlow timeouts without sleeping

`eapi_switch` yields the EapiSwitch (`.url .host .port .username .password .state .clock
.faults .requests`), DirectFlow shut down as on a fresh EOS box. `make_eapi_switch(**kw)`
starts more (keyword arguments of EapiSwitch; a FakeClock unless `clock=` is given). After
the test every switch is closed, and a Python exception inside a switch (a bug in the
stand-in, not an eAPI error) fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dfagent.lab.eapi import EapiSwitch, FakeClock


@pytest.fixture
def make_eapi_switch() -> Iterator[Callable[..., EapiSwitch]]:
    switches: list[EapiSwitch] = []

    def make(**kwargs: Any) -> EapiSwitch:
        kwargs.setdefault("username", "dfagent")
        kwargs.setdefault("password", "eapi-test-pw")
        kwargs.setdefault("clock", FakeClock())
        switch = EapiSwitch(**kwargs)
        switches.append(switch)
        return switch.start()

    try:
        yield make
    finally:
        for switch in switches:
            switch.close()
    errors = [e for s in switches for e in s.internal_errors]
    assert not errors, "the test switch raised:\n" + "\n".join(errors)


@pytest.fixture
def eapi_switch(make_eapi_switch: Callable[..., EapiSwitch]) -> EapiSwitch:
    return make_eapi_switch()
