"""The stop token: a thread-safe flag the GUI thread sets and the worker checks at every batch."""

from __future__ import annotations

import threading


class StopRequested(Exception):
    """Raised inside long work when the user asked to stop; callers turn it into a clean 'stopped' end."""


class StopToken:
    """Set from any thread with :meth:`request`; checked by long-running engine code."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def raise_if_requested(self) -> None:
        if self._event.is_set():
            raise StopRequested()
