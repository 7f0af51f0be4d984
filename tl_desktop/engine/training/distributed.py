"""Data-parallel training under ``torchrun``: which process this is, and what the processes share.

torchrun starts one process per device and tells each one its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); :func:`ranks_from_env` reads it, and without it (or with
one process) a run is the plain single-process run. Rules every rank follows:

- ``batch_size`` is the *global* batch: each global batch (drawn in the same seeded order on every
  rank) is cut into one contiguous share per rank (:meth:`Ranks.share`), and the loss of a step is
  normalised by the whole batch's weight, so 1 and N processes take the same optimisation steps.
- One small all-reduce per step carries every rank's stop flag with the batch's loss terms, so all
  ranks stop at the same step; validation sums are reduced the same way.
- Rank 0 alone writes the run folder. A rank that fails leaves its reason in torchrun's store
  (:meth:`Ranks.report_failure`); the others, cut off in a collective, read it back
  (:meth:`Ranks.explain_failure`), so rank 0's ``FitEnded`` names the rank and its error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import nn

from tl_desktop.config import ConfigError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
FAILURE_KEY = "tl_desktop/failed/{rank}"
COLLECTIVE_TIMEOUT = timedelta(minutes=30)  # a long feature-cache shard on a slow rank must not time out
FAILURE_WAIT_S = 3.0  # how long a rank cut off in a collective waits for the failed rank's reason


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (torchrun sets it), got {raw!r}") from None


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and speaks to the user."""
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    # ----- sharing work -----------------------------------------------------------------------------
    def share(self, indices: Sequence[int]) -> list[int]:
        """This rank's contiguous part of a global batch (parts differ in size by at most one)."""
        return list(indices)[slice(*self.bounds(len(indices)))]

    def bounds(self, count: int, rank: int | None = None) -> tuple[int, int]:
        """[start, stop) of ``rank``'s (default: this rank's) contiguous part of ``count`` items."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(count, self.world_size)
        start = rank * base + min(rank, extra)
        return start, start + base + (1 if rank < extra else 0)

    # ----- collectives (no-ops for one process) -------------------------------------------------------
    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over all ranks (float64, so counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch.distributed as dist

        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on some rank."""
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def all(self, flag: bool) -> bool:
        """Whether ``flag`` is true on every rank."""
        return self.sum([1.0 if flag else 0.0])[0] == self.world_size

    def broadcast_text(self, text: str | None) -> str:
        """Rank 0's ``text``, on every rank."""
        if not self.distributed:
            return text or ""
        import torch.distributed as dist

        box = [text if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])

    def all_gather_bytes(self, payload: bytes) -> list[bytes]:
        """Every rank's ``payload`` in rank order (sizes may differ: each is padded to the longest)."""
        if not self.distributed:
            return [payload]
        sizes = [int(part) for part in self._all_gather(torch.tensor([len(payload)], dtype=torch.int64))]
        mine = torch.zeros(max(sizes), dtype=torch.uint8)
        if payload:
            mine[: len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        return [part[:size].numpy().tobytes() for part, size in zip(self._all_gather(mine), sizes)]

    def _all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor)
        return parts

    def data_parallel(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` wrapped in DistributedDataParallel (gradients averaged over ranks); as is for one process."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=True)

    # ----- failures ---------------------------------------------------------------------------------
    def report_failure(self, text: str) -> None:
        """Leave this rank's failure where the other ranks can read it (torchrun's store)."""
        store = _store()
        if store is not None:
            try:
                store.set(FAILURE_KEY.format(rank=self.rank), text)
            except (RuntimeError, OSError):  # the launcher's store is gone too: its own log names the rank
                pass

    def failure_of_others(self, wait_s: float = 0.0) -> tuple[int, str] | None:
        """(rank, reason) of another rank that reported a failure, waiting up to ``wait_s`` for one."""
        store = _store()
        if store is None:
            return None
        keys = {rank: FAILURE_KEY.format(rank=rank) for rank in range(self.world_size) if rank != self.rank}
        deadline = time.monotonic() + wait_s
        while True:
            try:
                for rank, key in keys.items():
                    if store.check([key]):
                        return rank, store.get(key).decode("utf-8", "replace")
            except (RuntimeError, OSError):  # the launcher's store is gone: nobody can say more
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def explain_failure(self, exc: BaseException, error: str) -> tuple[str, str]:
        """The FitEnded error for ``exc`` (described as ``error``) and whose it is: "own" (this rank's),
        "other" (a rank that reported its failure: named, with its reason) or "lost" (cut off in a
        collective by a rank that left without a reason: stopped, or killed)."""
        cut_off = is_collective_error(exc)
        other = self.failure_of_others(FAILURE_WAIT_S if cut_off else 0.0)
        if other is not None:
            rank, reason = other
            return reason, "other"
        if cut_off:
            return f"{self.describe()} lost contact with the other processes ({error}); one of them ended", "lost"
        return f"{self.describe()} failed: {error}", "own"


def is_collective_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the processes' communication (a peer died or left)."""
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(exc)
    return isinstance(exc, dist_error) or any(marker in text for marker in (
        "Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL", "gloo"))


def _store():
    import torch.distributed as dist

    if not dist.is_initialized():
        return None
    return dist.distributed_c10d._get_default_store()


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks:
    """This process's ranks from torchrun's environment (a single process without it)."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return Ranks()
    world = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local = _env_int(environ, "LOCAL_RANK", 0)
    if world < 1 or not (0 <= rank < world) or local < 0:
        raise ConfigError(f"torchrun's environment is inconsistent: RANK={rank}, WORLD_SIZE={world}, "
                          f"LOCAL_RANK={local}")
    return Ranks(rank, world, local)


def start_process_group(ranks: Ranks) -> None:
    """Join the run's process group: gloo for CPU tensors, and NCCL for CUDA ones where a GPU is present."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)


def end_process_group() -> None:
    """Leave the process group (after the run, whatever its end)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: its own GPU (``LOCAL_RANK``) under torchrun, else ``device``."""
    if not ranks.distributed:
        return device
    if device.type == "cuda":
        return torch.device("cuda", ranks.local_rank % torch.cuda.device_count())
    if device.type != "cpu":
        raise ConfigError(f"training under torchrun runs on CUDA GPUs or the CPU, not on {device.type}; "
                          "use --device cuda or --device cpu")
    return device


def seed_rank(seed: int, ranks: Ranks) -> None:
    """Give ranks after the first their own random streams (dropout, augmentation), reproducibly."""
    if ranks.rank == 0:
        return  # rank 0 goes on exactly like a single process
    from tl_desktop.engine.training.recipe import seed_everything

    seed_everything(seed + ranks.rank)
