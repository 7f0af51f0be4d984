"""Callbacks observe the trainer's events. They never reach into the trainer; the only thing one may
ask for is an early end of training, through ``stop_training``."""

from __future__ import annotations

from typing import Any

from tl_desktop.engine.events import Event


class Callback:
    """Base class: override :meth:`on_event`. ``stop_training`` asks the trainer to end after this epoch."""

    stop_training: bool = False

    def on_event(self, event: Event) -> None:
        """Receive one event, in emission order."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for resumed runs)."""
