"""The router's "work was queued" call to the worker, which is built after it.

Router and worker need each other: the worker asks the router's rules again at send time (its
`gate`), and the router wakes the worker when it queues work. app.py builds the router with a
`WakeUp` and connects the worker to it once the worker exists, instead of a lambda that closes
over a variable assigned later: ringing before anything answers is a wiring mistake, said so.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["WakeUp"]


class WakeUp:
    def __init__(self) -> None:
        self._answer: Callable[[], None] | None = None

    def connect(self, answer: Callable[[], None]) -> None:
        if self._answer is not None:
            raise RuntimeError("WakeUp is connected already")
        self._answer = answer

    def __call__(self) -> None:
        if self._answer is None:
            raise RuntimeError("WakeUp rung before the worker was connected")
        self._answer()
