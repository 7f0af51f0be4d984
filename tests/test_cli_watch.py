"""Following a run another process writes: the engine's tail of ``events.jsonl`` (new lines only, a
partial last line kept back) and ``tl-desktop watch`` on a real tiny run's folder replayed line by line."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from tl_desktop.cli import main
from tl_desktop.engine.training.events import EpochEnded, FitEnded
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.workflows.watch import EventTail, follow_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_runs, make_image_folder) -> Path:
    """A completed tiny run (2 epochs) to replay."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("watched")
    tiny_runs.register_tiny_backbone(base)
    try:
        return tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 8, "b": 8}, size=36), base / "made")
    finally:
        unregister_backbone(tiny_runs.TINY_NAME)


def replay(trained: Path, target: Path, pause_s: float = 0.02, delay_s: float = 0.0) -> threading.Thread:
    """Write ``trained``'s run into ``target`` as a training process would: records first, then each event
    line in two pieces (a partial line first), the model file just before the last line."""
    lines = (trained / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)

    def write() -> None:
        time.sleep(delay_s)
        target.mkdir(parents=True)
        for name in ("config.json", "split.json", "audit.json", "best.safetensors"):
            shutil.copy(trained / name, target / name)
        with open(target / "events.jsonl", "w", encoding="utf-8") as handle:
            for index, line in enumerate(lines):
                if index == len(lines) - 1:
                    shutil.copy(trained / "model.tlmodel", target / "model.tlmodel")
                half = len(line) // 2
                handle.write(line[:half])
                handle.flush()
                time.sleep(pause_s)
                handle.write(line[half:])
                handle.flush()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_tail_reads_new_complete_lines_only_and_keeps_a_partial_last_line(tmp_path):
    events = tmp_path / "events.jsonl"
    tail = EventTail(events)
    assert tail.read() == []  # no file yet
    first = json.dumps(EpochEnded(1, 2, "head", 0.9, 0.5, 0.8, 0.6, 1e-3, 1.0, 1.0, True).to_dict())
    second = json.dumps(FitEnded("completed", str(tmp_path), None, 1, 0.6, 0.8, 2, 3.0).to_dict())
    events.write_text(first + "\n" + "not json\n" + second[:25], encoding="utf-8")
    got = tail.read()
    assert [e.kind for e in got] == ["EpochEnded"] and got[0].val_accuracy == 0.6 and tail.skipped == 1
    assert tail.read() == []  # nothing new: the partial line waits
    with open(events, "a", encoding="utf-8") as handle:
        handle.write(second[25:] + "\n")
    assert [e.kind for e in tail.read()] == ["FitEnded"]
    events.write_text(first + "\n", encoding="utf-8")  # replaced by a shorter file: read from its start
    assert [e.kind for e in tail.read()] == ["EpochEnded"]


def test_watch_follows_a_run_written_line_by_line_to_its_end(trained, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    writer = replay(trained, tmp_path / "runs" / trained.name, delay_s=0.3)
    code = main(["watch", str(tmp_path / "runs"), "--poll", "0.05"])  # a runs folder without a run yet
    writer.join()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Waiting for a run to start" in out
    assert out.count("epoch 1/2") == 1 and out.count("epoch 2/2") == 1  # every line once, none torn
    assert "Training finished" in out and f"tl-desktop report {tmp_path / 'runs' / trained.name}" in out


def test_follow_run_gives_the_local_folders_result(trained, tmp_path):
    target = tmp_path / "copy"
    writer = replay(trained, target, pause_s=0.002, delay_s=0.1)
    seen = []
    followed = follow_run(tmp_path, seen.append, poll_s=0.01)  # the folder appears while it is watched
    writer.join()
    result = followed.fit_result()
    expected = RunFolder(trained).epoch_history()
    assert result.status == "completed" and result.model_path == RunFolder(target).model_file
    assert [e.epoch for e in result.history] == [e.epoch for e in expected]
    assert seen[0].kind == "FitStarted" and seen[-1].kind == "FitEnded"


def test_watch_refuses_a_path_that_is_not_a_folder(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_watch_of_a_failed_run_exits_1(trained, tmp_path, capsys):
    run = tmp_path / "failed"
    run.mkdir()
    shutil.copy(trained / "config.json", run / "config.json")
    ended = FitEnded("failed", str(run), None, None, None, None, 0, 1.0, error="could not read image x.png")
    (run / "events.jsonl").write_text(json.dumps(ended.to_dict()) + "\n", encoding="utf-8")
    assert main(["watch", str(run)]) == 1
    assert "Training failed after 1 s: could not read image x.png" in capsys.readouterr().err


def test_a_server_job_names_the_server_paths_and_the_rendezvous_for_several_nodes(tmp_path):
    from tl_desktop.config import DataConfig, RunConfig
    from tl_desktop.engine.workflows.watch_server import (
        prepare_server_job,
        torchrun_command,
    )

    config = RunConfig(data=DataConfig(labels=str(tmp_path / "labels.csv")), out_dir=str(tmp_path / "runs"))
    job = prepare_server_job(config, tmp_path / "job", nproc_per_node=8, nnodes=2, server_data="/srv/labels.csv",
                             server_runs="/shared/runs")
    assert job.command == torchrun_command(8, 2) and "--nnodes 2 --rdzv-backend c10d" in job.command
    saved = RunConfig.load(job.config_file)
    assert saved.data.labels == "/srv/labels.csv" and saved.data.root == "" and saved.out_dir == "/shared/runs"
    script = job.script_file.read_text(encoding="utf-8")
    assert "RDZV_HOST" in script and script.rstrip().endswith(job.command)
    with pytest.raises(Exception, match="config.json exists"):
        prepare_server_job(config, tmp_path / "job", nproc_per_node=1)
