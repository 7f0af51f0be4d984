"""A run prepared for a server: its ``config.json`` and the exact ``torchrun`` command, in a folder the
user hands to whoever runs the server (the Train page's "Prepare for a server…").

The config is the run's own, with the image folder (or label table) and the runs folder as the server
sees them, so the job writes its run folder where this machine can follow it (``tl-desktop watch`` or
"Follow a run folder…"). Existing files are never replaced unasked.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.fileio import atomic_write_text, refuse_to_replace

CONFIG_NAME = "config.json"
SCRIPT_NAME = "train_on_server.sh"
RDZV_PORT = 29500


@dataclass(frozen=True)
class ServerJob:
    """The files written for a server and the command that trains there."""

    config_file: Path
    script_file: Path
    command: str


def torchrun_command(nproc_per_node: int, nnodes: int = 1, config_name: str = CONFIG_NAME) -> str:
    """The torchrun line, run in the folder that holds the config (on every node when ``nnodes`` > 1)."""
    if nproc_per_node < 1 or nnodes < 1:
        raise ConfigError("a server run needs at least 1 process per node and 1 node")
    nodes = (f" --nnodes {nnodes} --rdzv-backend c10d --rdzv-id tl-desktop-run "
             f"--rdzv-endpoint \"$RDZV_HOST:{RDZV_PORT}\"" if nnodes > 1 else "")
    return f"torchrun --nproc-per-node {nproc_per_node}{nodes} -m tl_desktop train --config {shlex.quote(config_name)}"


def server_config(config: RunConfig, server_data: str = "", server_runs: str = "") -> RunConfig:
    """``config`` with the images and the runs folder at their places on the server (kept when empty)."""
    data = config.data
    if server_data:
        data = dataclasses.replace(data, labels=server_data) if data.labels else dataclasses.replace(data, root=server_data)
    return config.replace(data=data, out_dir=server_runs or config.out_dir).validate()


def prepare_server_job(config: RunConfig, folder: str | Path, nproc_per_node: int, nnodes: int = 1,
                       server_data: str = "", server_runs: str = "", replace: bool = False) -> ServerJob:
    """Write ``config.json`` and ``train_on_server.sh`` into ``folder``; raises OverwriteRefused when one
    exists and ``replace`` is off, ConfigError for impossible settings."""
    folder = Path(folder).expanduser()
    command = torchrun_command(nproc_per_node, nnodes)
    job = server_config(config, server_data, server_runs)
    config_file, script_file = folder / CONFIG_NAME, folder / SCRIPT_NAME
    refuse_to_replace([config_file, script_file], replace)
    folder.mkdir(parents=True, exist_ok=True)
    job.save(config_file)
    atomic_write_text(script_file, _script(job, command, nproc_per_node, nnodes))
    script_file.chmod(0o755)
    return ServerJob(config_file, script_file, command)


def _script(job: RunConfig, command: str, nproc_per_node: int, nnodes: int) -> str:
    images = job.data.labels or job.data.root
    nodes = (f"# Run this script on each of the {nnodes} nodes, with RDZV_HOST set to the first node's host name\n"
             "# (examples/slurm/train.sbatch does this from SLURM's environment).\n" if nnodes > 1 else "")
    return (
        "#!/bin/sh\n"
        f"# Train this run with torchrun: {nproc_per_node} process(es) per node (one per GPU, or CPU processes),\n"
        f"# {nnodes} node(s). Needs a Python install of tl_desktop on the server (pip install tl-desktop).\n"
        f"# The images must be at {images}\n"
        f"# and the run folder appears in {job.out_dir}; follow it with `tl-desktop watch` or the\n"
        "# window's \"Follow a run folder...\". batch_size in config.json is the global batch.\n"
        f"{nodes}"
        "set -e\n"
        'cd "$(dirname "$0")"\n'
        f"{command}\n"
    )
