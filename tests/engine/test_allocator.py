"""Freed activation memory is reused instead of being page-faulted in again every batch."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tl_desktop.engine.runtime import allocator
from tl_desktop.engine.runtime.allocator import (
    heavy_work,
    release_freed_memory,
    reuse_freed_memory,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tuning applies to glibc only")

ACTIVATION_BYTES = 96 * 1024**2  # larger than glibc's default mmap threshold and a thread arena's heap
PAGES = ACTIVATION_BYTES // resource.getpagesize()
ROOT = Path(__file__).resolve().parents[2]


def faults_while_reallocating(batches: int = 8, warmup: int = 8) -> int:
    """Minor page faults while a batch-sized tensor is allocated, written and freed ``batches`` times,
    after ``warmup`` times (a few batches leave enough freed memory to serve the aligned requests)."""
    for _ in range(warmup):
        torch.ones(ACTIVATION_BYTES // 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(batches):
        torch.ones(ACTIVATION_BYTES // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_memory_is_reused_on_the_main_thread():
    assert reuse_freed_memory()
    assert faults_while_reallocating() < 8 * PAGES // 2  # untuned: every batch faults all its pages in


def test_freed_memory_is_reused_on_a_worker_thread():
    # Training in the window runs on a worker thread, which glibc would give an arena of its own. The
    # tuning comes before any thread starts, as in the command line: a fresh process, not this one.
    code = ("import threading\n"
            "from tl_desktop.engine.runtime.allocator import reuse_freed_memory\n"
            "assert reuse_freed_memory()\n"
            "from tests.engine.test_allocator import PAGES, faults_while_reallocating\n"
            "counted = []\n"
            "worker = threading.Thread(target=lambda: counted.append(faults_while_reallocating()))\n"
            "worker.start()\n"
            "worker.join()\n"
            "assert counted[0] < 8 * PAGES // 2, counted\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)


def test_released_memory_can_be_used_again():
    reuse_freed_memory()
    release_freed_memory()
    assert float(torch.ones(ACTIVATION_BYTES // 4).sum()) == ACTIVATION_BYTES // 4


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_freed_memory_goes_back_once_no_job_has_run_for_a_while(monkeypatch):
    assert reuse_freed_memory()
    monkeypatch.setattr(allocator, "IDLE_SECONDS", 0.3)
    with heavy_work():
        torch.ones(ACTIVATION_BYTES // 4)  # freed at once; the heap keeps it
    with heavy_work():  # the next job, such as the next folder to predict, finds the memory in place
        kept = resident_bytes()
        time.sleep(1.0)
        assert resident_bytes() > kept - ACTIVATION_BYTES // 4
    deadline = time.monotonic() + 10
    while resident_bytes() > kept - ACTIVATION_BYTES // 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resident_bytes() <= kept - ACTIVATION_BYTES // 2


def test_the_command_line_tunes_the_allocator_before_any_work():
    code = ("from tl_desktop.cli import main\n"
            "from tl_desktop.engine.runtime import allocator\n"
            "assert main(['cache', 'info']) == 0\n"
            "assert allocator._state.get('tuned') is True\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_the_tuning_can_be_switched_off():
    code = ("from tl_desktop.engine.runtime.allocator import reuse_freed_memory\n"
            "assert reuse_freed_memory() is False\n")
    env = dict(os.environ, TL_DESKTOP_REUSE_FREED_MEMORY="0")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
