"""The eAPI test switch as a fixture: one switch per test on an ephemeral port.

    def test_x(eapi_switch):
        node = pyeapi.client.connect(**eapi_switch.connect_args(), return_node=True)
        eapi_switch.clock.advance(301)      # FakeClock: DirectFlow timeouts without sleeping

Yields the EapiSwitch (`.url .host .port .username .password .state .clock .faults
.requests`), DirectFlow shut down as on a fresh EOS box. After the test it is closed, and a
Python exception inside the switch (a bug in the stand-in, not an eAPI error) fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dfagent.lab.eapi import EapiSwitch, FakeClock


@pytest.fixture
def eapi_switch() -> Iterator[EapiSwitch]:
    switch = EapiSwitch(username="dfagent", password="eapi-test-pw", clock=FakeClock())
    switch.start()
    try:
        yield switch
    finally:
        switch.close()
    assert not switch.internal_errors, "the test switch raised:\n" + "\n".join(
        switch.internal_errors
    )
