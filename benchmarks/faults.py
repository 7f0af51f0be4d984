"""The bad-input and fault catalogue of issue 14, run against the command line: one table row per case.

Every case runs ``tl-desktop`` in a fresh subprocess (through a launcher that registers the tests' tiny
CNN, so training takes seconds) on tiny synthetic data in a scratch folder, with its own cache folder.
A row shows the case, the exit code, the first line the command printed on stderr and a verdict: "ok"
when the exit code is the expected one, no traceback was printed, a failure said why, and the case's own
check (files kept, folders not created, messages named) holds; otherwise "FAIL" and why.

Usage::

    python benchmarks/faults.py [--only WORD] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load(TESTS / "conftest.py", "faults_shared_fixtures")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def first_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip() and "…" not in line]
        errors = [line for line in lines if "error:" in line]
        return (errors or lines or [""])[0]


class Bench:
    """The scratch folder, the launcher and one trained run the cases share."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.launcher = work / "tl_desktop_tiny.py"
        self.launcher.write_text(_shared.TINY_LAUNCHER.format(conftest=str(TESTS / "engine" / "conftest.py"),
                                                              weights=str(work / "tiny.safetensors")))
        self.env = {**os.environ, "TL_DESKTOP_CACHE_DIR": str(work / "cache"),
                    "TL_DESKTOP_WEIGHTS_MIRROR": "http://127.0.0.1:9/", "PYTHONWARNINGS": "ignore"}
        self.data = images(work / "data", {"a": 12, "b": 12}, layout="split")
        self.run = self.train_run(self.data, work / "runs")

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Outcome:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(self.launcher), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **(env or {})})
        return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)

    def train_run(self, data: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Path:
        done = self.cli(*train_args(data, out), *extra, env=env)
        if done.code != 0:
            raise SystemExit(f"the reference run failed ({done.code}):\n{done.stderr[-2000:]}")
        return next(p for p in out.iterdir() if p.is_dir())

    def fresh(self, name: str) -> Path:
        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder


def images(root: Path, classes: dict[str, int], layout: str = "flat", size: int = 40) -> Path:
    folder = _shared._make_image_folder(root, classes=classes, size=size, layout=layout)
    return folder


def train_args(data: Path, out: Path, epochs: int = 2) -> list[str]:
    return ["train", "--data", str(data), "--backbone", "tiny_cnn", "--trainable-blocks", "1", "--epochs",
            str(epochs), "--head-epochs", "1", "--batch-size", "4", "--out", str(out)]


def model_of(run: Path) -> Path:
    return run / "model.tlmodel"


def rewritten_model(source: Path, target: Path, meta_change=None, weights_change=None) -> Path:
    """A copy of a model file with its metadata dict and/or its tensors changed."""
    from safetensors.torch import load, save

    with zipfile.ZipFile(source) as archive:
        meta = json.loads(archive.read("meta.json"))
        weights = archive.read("weights.safetensors")
    if meta_change is not None:
        meta_change(meta)
    if weights_change is not None:
        state = load(weights)
        weights_change(state)
        weights = save(state)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("meta.json", json.dumps(meta))
        archive.writestr("weights.safetensors", weights)
    return target


@dataclass
class Case:
    name: str
    expect: tuple[int, ...]
    run: Callable[[Bench], tuple[Outcome, str]]  # the outcome and "" or why its own check failed


def verdict(case: Case, outcome: Outcome, problem: str) -> str:
    if outcome.code not in case.expect:
        return f"FAIL: expected exit {'/'.join(map(str, case.expect))}"
    if "Traceback" in outcome.stderr:
        return "FAIL: traceback"
    if outcome.code > 0 and not outcome.first_line:  # a process killed by a signal (< 0) cannot say anything
        return "FAIL: no message"
    return f"FAIL: {problem}" if problem else "ok"


def run_catalogue(bench: Bench, cases: list[Case]) -> list[tuple[str, int, str, str, float]]:
    rows = []
    for case in cases:
        try:
            outcome, problem = case.run(bench)
        except subprocess.TimeoutExpired as exc:
            outcome, problem = Outcome(-1, "", f"hung: killed after {exc.timeout:.0f} s", exc.timeout), "hung"
        rows.append((case.name, outcome.code, outcome.first_line, verdict(case, outcome, problem), outcome.seconds))
        print(f"  {case.name}: {rows[-1][3]}", file=sys.stderr, flush=True)
    return rows


def print_table(rows: list[tuple[str, int, str, str, float]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"| {'case':<{width}} | exit | first line of the message | verdict | s |")
    print(f"|{'-' * (width + 2)}|------|---------------------------|---------|---|")
    for name, code, line, result, seconds in rows:
        line = line if len(line) <= 110 else line[:107] + "..."
        print(f"| {name:<{width}} | {code} | {line.replace('|', '/')} | {result} | {seconds:.1f} |")
    bad = sum(1 for r in rows if r[3] != "ok")
    print(f"\n{len(rows)} cases, {len(rows) - bad} ok, {bad} not")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only the cases whose name contains this word")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and print where it is")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tl_faults_"))
    try:
        print(f"training the reference run in {work} ...", file=sys.stderr, flush=True)
        bench = Bench(work)
        cases = [c for c in all_cases() if not args.only or args.only in c.name]
        print_table(run_catalogue(bench, cases))
        for stopped, exited in SCAN_STOP_TIMES:
            print(f"Ctrl-C during the scan: 'Stopped' {stopped:.3f} s after the signal, process gone after "
                  f"{exited:.3f} s" if stopped is not None else f"Ctrl-C during the scan: exit after {exited:.3f} s")
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def send_when(process: subprocess.Popen, marker: str, delay_s: float, sig: int) -> tuple[str, float]:
    """Read ``process``'s stdout until a line holds ``marker``, wait ``delay_s``, send ``sig``; return the
    output so far and the time the signal went."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            break
    time.sleep(delay_s)
    sent = time.perf_counter()
    process.send_signal(sig)
    return "".join(seen), sent




# ----- the cases (issue 14's numbering in brackets) ------------------------------------------------------
def _expect_text(outcome: Outcome, *texts: str) -> str:
    both = outcome.stdout + outcome.stderr
    missing = [t for t in texts if t not in both]
    return f"does not say {missing[0]!r}" if missing else ""


def special_file(kind: str) -> Callable[[Bench], tuple[Outcome, str]]:
    """[1] a FIFO, a link to /dev/zero or a link out of the data folder among the images."""
    def run(bench: Bench) -> tuple[Outcome, str]:
        data = images(bench.fresh(f"special-{kind}"), {"a": 6, "b": 6})
        odd = data / "a" / "odd.jpg"
        if kind == "fifo":
            os.mkfifo(odd)
        elif kind == "dev-zero":
            odd.symlink_to("/dev/zero")
        else:
            outside = bench.work / "outside.jpg"
            shutil.copy(next((data / "b").iterdir()), outside)
            odd.symlink_to(outside)
        outcome = bench.cli(*train_args(data, data.parent / "runs", epochs=1), timeout=120)
        return outcome, _expect_text(outcome, "odd.jpg")
    return run


def zip_bomb(bench: Bench) -> tuple[Outcome, str]:
    """[2] a small model file whose weights would inflate to 256 MiB."""
    count = 64 * 1024**2
    header = json.dumps({"w": {"dtype": "F32", "shape": [count], "data_offsets": [0, 4 * count]}}).encode()
    bomb = bench.work / "bomb.tlmodel"
    with zipfile.ZipFile(model_of(bench.run)) as archive:
        meta = archive.read("meta.json")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.json", meta)
        with archive.open("weights.safetensors", "w", force_zip64=True) as handle:
            handle.write(len(header).to_bytes(8, "little") + header)
            for _ in range(64):
                handle.write(bytes(4 * count // 64))
    return bench.cli("predict", "--model", bomb, next(bench.data.rglob("*.jpg"))), ""


def killed_run(sig: str, expect_code: int) -> Callable[[Bench], tuple[Outcome, str]]:
    """[3] SIGKILL / SIGTERM / a double Ctrl-C in the second epoch; the run is then usable and resumable."""
    def run(bench: Bench) -> tuple[Outcome, str]:
        out = bench.fresh(f"killed-{sig.replace(':', '-')}")
        killed = bench.cli(*train_args(bench.data, out, epochs=3), env={"TL_TEST_SIGNAL_AT": f"BatchEnded:2:1:{sig}"})
        run_dir = next(out.iterdir())
        problem = "" if killed.code == expect_code else f"the signalled run exited {killed.code}"
        predicted = bench.cli("predict", "--model", run_dir, next(bench.data.rglob("*.jpg")))
        resumed = bench.cli("train", "--resume", run_dir)
        if not problem and predicted.code != 0:
            problem = f"predict on the stopped run exited {predicted.code}: {predicted.first_line}"
        if not problem and resumed.code != 0:
            problem = f"--resume exited {resumed.code}: {resumed.first_line}"
        return killed, problem
    return run


def diverging_loss(bench: Bench) -> tuple[Outcome, str]:
    """[4] a learning rate that makes the loss infinite."""
    out = bench.fresh("diverging")
    outcome = bench.cli(*train_args(bench.data, out, epochs=3), "--lr", "1e30", "--finetune-lr", "1e30")
    return outcome, _expect_text(outcome, "diverged")


def _poison(state) -> None:
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name].view(-1)[0] = float("nan")


def _setter(*keys: str, value):
    def change(meta: dict) -> None:
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def bad_model(meta_change=None, weights_change=None, expect_text: str = "") -> Callable[[Bench], tuple[Outcome, str]]:
    """[4, 7] a model file with nonsense inside: predict must refuse it."""
    def run(bench: Bench) -> tuple[Outcome, str]:
        bad = rewritten_model(model_of(bench.run), bench.work / "bad.tlmodel", meta_change, weights_change)
        outcome = bench.cli("predict", "--model", bad, next(bench.data.rglob("*.jpg")))
        return outcome, _expect_text(outcome, expect_text)
    return run


def out_is_a_file(bench: Bench) -> tuple[Outcome, str]:
    """[5] --out names a file."""
    target = bench.work / "a-file"
    target.write_text("mine")
    outcome = bench.cli(*train_args(bench.data, target))
    return outcome, "" if target.read_text() == "mine" else "the file was changed"


def moved_split(bench: Bench) -> tuple[Outcome, str]:
    """[6] evaluate --split test again after the data moved: earlier results stay."""
    data = images(bench.fresh("moving"), {"a": 12, "b": 12}, layout="split")
    run_dir = bench.train_run(data, data.parent / "runs")
    first = bench.cli("evaluate", "--model", run_dir, "--split", "test", "--bootstrap", "0")
    saved = run_dir / "evaluation" / "test" / "metrics.json"
    before = saved.read_bytes() if first.code == 0 else b""
    data.rename(data.with_name("moved-away"))
    outcome = bench.cli("evaluate", "--model", run_dir, "--split", "test", "--bootstrap", "0")
    return outcome, "" if saved.is_file() and saved.read_bytes() == before else "the earlier results changed"


def two_external_folders(bench: Bench) -> tuple[Outcome, str]:
    """[6] evaluate --data a/images then b/images: both results kept."""
    folders = [images(bench.fresh(f"site-{s}"), {"a": 3, "b": 3}) for s in "ab"]
    outcomes = [bench.cli("evaluate", "--model", bench.run, "--data", f, "--bootstrap", "0") for f in folders]
    saved = [p for p in (bench.run / "evaluation").iterdir() if p.name.startswith("external-images")]
    return outcomes[-1], "" if len(saved) == 2 else f"{len(saved)} external result folders"


def report_without_images(bench: Bench) -> tuple[Outcome, str]:
    """[6] report when every split image is gone."""
    data = images(bench.fresh("vanishing"), {"a": 12, "b": 12}, layout="split")
    run_dir = bench.train_run(data, data.parent / "runs")
    shutil.rmtree(data)
    outcome = bench.cli("report", run_dir, "--bootstrap", "0")
    return outcome, "" if not (run_dir / "report" / "report.pdf").exists() else "a report was written"


def bad_config(content: str) -> Callable[[Bench], tuple[Outcome, str]]:
    """[7] --config with values of the wrong type."""
    def run(bench: Bench) -> tuple[Outcome, str]:
        config = bench.work / "settings.json"
        config.write_text(content)
        out = bench.work / "config-runs"
        outcome = bench.cli("train", "--data", bench.data, "--config", config, "--out", out)
        return outcome, "a run folder was created" if out.exists() else ""
    return run


def predict_batch_zero(bench: Bench) -> tuple[Outcome, str]:
    """[7] predict --batch-size 0."""
    return bench.cli("predict", "--model", bench.run, bench.data, "--batch-size", "0"), ""


def damaged_cached_weights(bench: Bench) -> tuple[Outcome, str]:
    """[8] random bytes in the cached weights of a real backbone, offline: reported as damaged."""
    cache = bench.work / "cache" / "weights"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "resnet18-f37072fd.pth").write_bytes(os.urandom(4096))
    out = bench.work / "resnet-runs"
    outcome = bench.cli("train", "--data", bench.data, "--backbone", "resnet18", "--epochs", "1", "--out", out)
    problem = "a run folder was created" if out.exists() else _expect_text(outcome, "damaged")
    return outcome, problem or ("pickle named" if "pickle" in outcome.stderr else "")


def refused_before_folder(*flags: str) -> Callable[[Bench], tuple[Outcome, str]]:
    """[8, 9] settings refused before any run folder exists."""
    def run(bench: Bench) -> tuple[Outcome, str]:
        out = bench.work / "never"
        outcome = bench.cli(*train_args(bench.data, out), *flags)
        return outcome, "a run folder was created" if out.exists() else ""
    return run


def stale_part(bench: Bench) -> tuple[Outcome, str]:
    """[9] a killed cache write: an old part folder is swept, a fresh one counted by cache info."""
    features = bench.work / "cache" / "features"
    old, fresh = features / ".dead.1.part", features / ".alive.2.part"
    for folder in (old, fresh):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "values.npy").write_bytes(bytes(10_000))
    long_ago = time.time() - 7200
    os.utime(old / "values.npy", (long_ago, long_ago))
    os.utime(old, (long_ago, long_ago))
    outcome = bench.cli("cache", "info")
    problem = "the old part folder is still there" if old.exists() else _expect_text(outcome, "unfinished writes: 1")
    shutil.rmtree(fresh, ignore_errors=True)
    return outcome, problem


def link_loop(bench: Bench) -> tuple[Outcome, str]:
    """[9] predict on a loop of symbolic links."""
    folder = bench.fresh("loop")
    (folder / "x.jpg").symlink_to(folder / "y.jpg")
    (folder / "y.jpg").symlink_to(folder / "x.jpg")
    outcome = bench.cli("predict", "--model", bench.run, folder / "x.jpg")
    return outcome, _expect_text(outcome, "loop of symbolic links")


def cjk_classes(bench: Bench) -> tuple[Outcome, str]:
    """[9] class names in Chinese and an emoji: the report is written and says which glyphs no font here has."""
    data = images(bench.fresh("cjk"), {"猫": 12, "犬🐶": 12}, layout="split")
    run_dir = bench.train_run(data, data.parent / "runs")
    return bench.cli("report", run_dir, "--bootstrap", "0"), ""


def tiny_images(bench: Bench) -> tuple[Outcome, str]:
    """[9] 1x1 images among the training images: the audit warns."""
    data = images(bench.fresh("tiny"), {"a": 8, "b": 8})
    from PIL import Image

    Image.new("RGB", (1, 1), "red").save(data / "a" / "dot.png")
    outcome = bench.cli(*train_args(data, data.parent / "runs", epochs=1))
    return outcome, _expect_text(outcome, "images are smaller than 56x56")


def user_file_kept(bench: Bench) -> tuple[Outcome, str]:
    """[10] predict --csv onto a file that exists, without --force."""
    table = bench.work / "mine.csv"
    table.write_text("precious")
    outcome = bench.cli("predict", "--model", bench.run, bench.data, "--csv", table)
    return outcome, "" if table.read_text() == "precious" else "the file was overwritten"


def scan_interrupt(bench: Bench) -> tuple[Outcome, str]:
    """[1] Ctrl-C during the scan of 5,000 small files stops it within a second."""
    from PIL import Image

    data = bench.fresh("many")
    for name in ("a", "b"):
        (data / name).mkdir()
        for index in range(2500):
            Image.new("RGB", (64, 64), (index % 256, 0, 0)).save(data / name / f"{index}.png")
    process = subprocess.Popen([sys.executable, str(bench.launcher), *train_args(data, data.parent / "runs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench.env)
    started = time.perf_counter()
    errors: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: errors.extend((time.perf_counter(), line) for line in process.stderr))
    reader.start()
    seen, sent = send_when(process, "Scanning", 0.5, signal.SIGINT)
    rest = process.stdout.read()
    process.wait(timeout=60)
    exited = time.perf_counter() - sent
    reader.join(timeout=5)
    outcome = Outcome(process.returncode, seen + rest, "".join(line for _, line in errors),
                      time.perf_counter() - started)
    stopped = next((at - sent for at, line in errors if line.startswith("Stopped")), None)
    SCAN_STOP_TIMES.append((stopped, exited))
    if "Data:" in outcome.stdout:
        return outcome, "the scan finished before the signal"
    if stopped is None:
        return outcome, "it never said it stopped"
    return outcome, "" if stopped < 1.0 else f"the scan took {stopped:.2f} s to stop"


SCAN_STOP_TIMES: list[tuple[float | None, float]] = []  # (signal to "Stopped", signal to exit) in seconds


def all_cases() -> list[Case]:
    return [
        Case("[1] FIFO among the images", (0,), special_file("fifo")),
        Case("[1] link to /dev/zero among the images", (0,), special_file("dev-zero")),
        Case("[1] link out of the data folder", (0,), special_file("outside")),
        Case("[1] Ctrl-C during a scan of 5,000 files (< 1 s)", (130,), scan_interrupt),
        Case("[2] zip-bomb model file (256 MiB inflated)", (2,), zip_bomb),
        Case("[3] SIGKILL mid-run, then predict and --resume", (-9,), killed_run("SIGKILL", -9)),
        Case("[3] SIGTERM mid-run, then predict and --resume", (143,), killed_run("SIGTERM", 143)),
        Case("[3] double Ctrl-C mid-run, then predict and --resume", (130,), killed_run("SIGINT:SIGINT", 130)),
        Case("[4] loss diverges (lr 1e30)", (1,), diverging_loss),
        Case("[4] model with NaN weights", (2,), bad_model(weights_change=_poison, expect_text="NaN")),
        Case("[4] model with temperature 0", (2,), bad_model(_setter("temperature", value=0), None, "temperature")),
        Case("[4] model with std 0", (2,), bad_model(_setter("preprocessing", "std", value=[0.5, 0, 0.5]), None, "std")),
        Case("[4] model with a class name that is a number", (2,), bad_model(_setter("classes", value=["a", 3]))),
        Case("[4] model with duplicate class names", (2,), bad_model(_setter("classes", value=["a", "a"]))),
        Case("[4] model with more classes than its head", (2,), bad_model(_setter("classes", value=["a", "b", "c"]))),
        Case("[5] --out is a file", (1, 2), out_is_a_file),
        Case("[6] evaluate --split test after the data moved", (2,), moved_split),
        Case("[6] evaluate a/images then b/images", (0,), two_external_folders),
        Case("[6] report with every split image gone", (2,), report_without_images),
        Case("[7] meta.json without preprocessing", (2,), bad_model(lambda m: m.pop("preprocessing"))),
        Case("[7] meta.json with an unknown backbone", (2,), bad_model(_setter("backbone", value="resnet9000"))),
        Case("[7] meta.json with dropout 'abc'", (2,), bad_model(_setter("config", "model", "dropout", value="abc"))),
        Case("[7] meta.json with config [1, 2]", (2,), bad_model(_setter("config", value=[1, 2]))),
        Case("[7] meta.json with temperature 'hot'", (2,), bad_model(_setter("temperature", value="hot"))),
        Case('[7] --config with "epochs": "ten"', (2,), bad_config('{"train": {"epochs": "ten"}}')),
        Case("[7] --config that is a JSON list", (2,), bad_config("[1, 2]")),
        Case("[7] predict --batch-size 0", (2,), predict_batch_zero),
        Case("[8] random bytes in the cached weights (offline)", (2,), damaged_cached_weights),
        Case("[8] broken --weights-file", (2,), refused_before_folder("--weights-file", __file__)),
        Case("[8] --device cuda without CUDA", (2,), refused_before_folder("--device", "cuda")),
        Case("[9] stale .part folder in the cache", (0,), stale_part),
        Case("[9] predict on a symbolic link loop", (2,), link_loop),
        Case("[9] CJK and emoji class names in the report", (0,), cjk_classes),
        Case("[9] --epochs 1", (0,), lambda b: (b.cli(*train_args(b.data, b.fresh("one-epoch"), epochs=1)), "")),
        Case("[9] --trainable-blocks 999", (2,), refused_before_folder("--trainable-blocks", "999")),
        Case("[9] a 1x1 image among the images", (0,), tiny_images),
        Case("[10] predict --csv onto an existing file", (2,), user_file_kept),
    ]


if __name__ == "__main__":
    main()
