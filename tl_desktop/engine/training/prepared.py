"""What rank 0 hands the other ranks of a distributed run before training: the settings and the
scanned split (so every rank trains on exactly the same images), or why there is nothing to train.

Plain JSON, the same forms the run folder stores (``config.json``, ``split.json``, ``audit.json``);
nothing is unpickled.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.engine.runtime.stop import StopRequested

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import ScanResult


def encode_prepared(config: RunConfig | None = None, scan: ScanResult | None = None, refusal: str | None = None,
                    stopped: bool = False) -> str:
    """One JSON text: a prepared run (a resumed one has no scan: every rank reads its run folder), a
    refusal, or a stop before training."""
    if refusal is not None:
        return json.dumps({"refusal": refusal})
    if stopped or config is None:
        return json.dumps({"stopped": True})
    return json.dumps({"config": config.to_dict(),
                       "split": scan.split.to_dict() if scan is not None else None,
                       "audit": scan.audit.to_dict() if scan is not None else None})


def decode_prepared(text: str) -> tuple[RunConfig, ScanResult | None]:
    """The settings and scan of :func:`encode_prepared`; raises ConfigError for a refusal (rank 0 has
    said why) and StopRequested for a stop."""
    from tl_desktop.engine.data.audit import Audit
    from tl_desktop.engine.data.dataset import DatasetSplit, ScanResult

    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"rank 0 sent an unreadable description of the run ({exc})") from exc
    if "refusal" in raw:
        raise ConfigError(raw["refusal"])
    if raw.get("stopped"):
        raise StopRequested()
    config = RunConfig.from_dict(raw["config"])
    if raw["split"] is None:
        return config, None
    return config, ScanResult(split=DatasetSplit.from_dict(raw["split"]), audit=Audit.from_dict(raw["audit"]))
