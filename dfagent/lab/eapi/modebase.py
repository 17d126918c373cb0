"""The base of every CLI mode of the test switch (one module so policy modes can share it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfagent.lab.eapi.tokens import Tokens

if TYPE_CHECKING:
    from dfagent.lab.eapi.modes import Session


class Mode:
    KEYWORDS: tuple[str, ...] = ()
    NO_KEYWORDS: tuple[str, ...] = ()  # second words after `no`

    def knows(self, t: Tokens) -> bool:
        start = t.pos
        try:
            if t.accept("no", "default"):
                return t.accept(*self.NO_KEYWORDS) is not None
            return t.accept(*self.KEYWORDS) is not None
        finally:
            t.pos = start

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        """Run one command; returns a sub-mode to enter, if the command opens one."""
        raise NotImplementedError

    def leave(self, s: Session) -> None:
        """The mode is left: commit what it edited."""
