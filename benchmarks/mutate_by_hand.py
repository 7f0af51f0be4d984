"""Hand-written mutations that mutmut cannot make, each of which some test must catch.

mutmut 3 only rewrites the bodies of undecorated functions, so it never touches
``atomic_writer`` (a ``@contextmanager``) or module-level constants such as ``_PICKLE_SUFFIXES``
and ``LEVEL``. This list covers those, plus the defects an issue once found no test for ("Tests that
catch what they claim"): they must stay caught.

Each mutation replaces one exact piece of source text (it must occur exactly once) in a scratch copy
of the project, runs the named tests there, and restores the file. A mutation whose text is no longer
found is reported STALE: the code moved, so update the entry.

    python benchmarks/mutate_by_hand.py            # all of them
    python benchmarks/mutate_by_hand.py pickle fsync   # those whose name contains a word
    python benchmarks/mutate_by_hand.py --check        # only check that every target text is still there
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BUNDLE = "tl_desktop/engine/models/bundle.py"
FILEIO = "tl_desktop/fileio.py"
BOOTSTRAP = "tl_desktop/engine/evaluation/bootstrap.py"
T_BUNDLE = ("tests/engine/test_bundle.py",)
T_FILEIO = ("tests/engine/test_fileio.py",)
T_BOOTSTRAP = ("tests/engine/test_bootstrap.py", "tests/engine/test_metrics.py")

MUTATIONS = [
    # The model loader's pickle refusal (module constant and the check itself).
    Mutation("pickle refusal disabled", BUNDLE,
             "risky = sorted(n for n in names if n.lower().endswith(_PICKLE_SUFFIXES))", "risky = []", T_BUNDLE),
    Mutation("pickle check case-sensitive", BUNDLE,
             "if n.lower().endswith(_PICKLE_SUFFIXES)", "if n.endswith(_PICKLE_SUFFIXES)", T_BUNDLE),
    Mutation("pickle suffixes without .pt", BUNDLE,
             '_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt")',
             '_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pth", ".bin", ".ckpt")', T_BUNDLE),
    Mutation("pickle suffixes without .ckpt", BUNDLE,
             '_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt")',
             '_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin")', T_BUNDLE),
    # atomic_writer (decorated, so out of mutmut's reach).
    Mutation("fsync rename before flush and fsync", FILEIO,
             "            handle.flush()\n            os.fsync(handle.fileno())\n        _replace_with_retry(tmp_name, path)",
             "            _replace_with_retry(tmp_name, path)\n            handle.flush()\n            os.fsync(handle.fileno())",
             T_FILEIO),
    Mutation("fsync no flush", FILEIO, "            handle.flush()\n", "", T_FILEIO),
    Mutation("fsync no fsync", FILEIO, "            os.fsync(handle.fileno())\n", "", T_FILEIO),
    Mutation("atomic temp left after a failed rename", FILEIO,
             "    except OSError as exc:\n        _remove_quietly(tmp_name)\n        raise DiskWriteError",
             "    except OSError as exc:\n        raise DiskWriteError", T_FILEIO),
    Mutation("atomic temp left after a caller's error", FILEIO,
             "    except BaseException:\n        _remove_quietly(tmp_name)\n        raise",
             "    except BaseException:\n        raise", T_FILEIO),
    Mutation("atomic raw OSError instead of DiskWriteError", FILEIO,
             "        fd, tmp_name = tempfile.mkstemp(prefix=f\".{path.name}.\", suffix=\".part\", dir=path.parent)\n"
             "    except OSError as exc:\n        raise DiskWriteError",
             "        fd, tmp_name = tempfile.mkstemp(prefix=f\".{path.name}.\", suffix=\".part\", dir=path.parent)\n"
             "    except ValueError as exc:\n        raise DiskWriteError", T_FILEIO),
    Mutation("atomic temp permissions kept at 0600", FILEIO, "        _chmod_like_new_file(fd)\n", "", T_FILEIO),
    # Bootstrap intervals (module constant and the percentile cut).
    Mutation("interval 90% reported as 95%", BOOTSTRAP,
             "tail = (1 - level) / 2 * 100", "tail = (1 - level) * 100", T_BOOTSTRAP),
    Mutation("interval level constant 0.90", BOOTSTRAP, "LEVEL = 0.95", "LEVEL = 0.90", T_BOOTSTRAP),
    Mutation("bootstrap unseeded", BOOTSTRAP,
             "rng = np.random.default_rng(seed)", "rng = np.random.default_rng()", T_BOOTSTRAP),
    # Training rules.
    Mutation("class weights not passed to the loss", "tl_desktop/engine/training/trainer.py",
             "CrossEntropyLoss(weight=weights,", "CrossEntropyLoss(weight=None,",
             ("tests/engine/test_training_rules.py",)),
    Mutation("early-stopping patience not reset at a new phase", "tl_desktop/engine/training/callbacks.py",
             "        if isinstance(event, PhaseStarted):\n            self.wait = 0",
             "        if isinstance(event, PhaseStarted):\n            pass", ("tests/engine/test_training_rules.py",)),
    Mutation("seed_worker does nothing", "tl_desktop/engine/training/recipe.py",
             "    random.seed(seed)\n    np.random.seed(seed)", "    pass", ("tests/engine/test_training_rules.py",)),
    # Calibration and prediction output.
    Mutation("calibration replaces the stored temperature", "tl_desktop/engine/workflows/evaluation.py",
             "temperature=previous * factor", "temperature=factor", ("tests/test_cli_evaluate.py",)),
    Mutation("predict --top-k prints the wrong class names", "tl_desktop/commands/predict.py",
             'print(f"  {row[index]:7.2%}  {classes[index]}")',
             'print(f"  {row[index]:7.2%}  {classes[(index + 1) % len(classes)]}")', ("tests/test_cli.py",)),
    # Grad-CAM through the app's model: a transposed map (the corner tests are symmetric).
    Mutation("Grad-CAM map transposed", "tl_desktop/engine/evaluation/saliency.py",
             "cam = torch.relu(contribution.sum(dim=1))[0].cpu().numpy()",
             "cam = torch.relu(contribution.sum(dim=1))[0].cpu().numpy().T",
             ("tests/engine/test_saliency_app_model.py",)),
]


def _copy_project(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.egg-info")
    for name in ("tl_desktop", "tests"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")


def run(mutation: Mutation, work: Path) -> tuple[str, str, float]:
    path = work / mutation.path
    if not path.is_file():
        return "STALE", f"{mutation.path} does not exist", 0.0
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.old) != 1:
        return "STALE", f"target text found {original.count(mutation.old)} times in {mutation.path}", 0.0
    path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                 *mutation.tests], cwd=work, capture_output=True, text=True,
                                env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=900)
    finally:
        path.write_text(original, encoding="utf-8")
    lines = result.stdout.strip().splitlines()
    verdict = "killed" if result.returncode else "SURVIVED"
    return verdict, lines[-1] if lines else result.stderr.strip()[-200:], time.monotonic() - started


def check() -> int:
    stale = [m for m in MUTATIONS if not (REPO / m.path).is_file()
             or (REPO / m.path).read_text(encoding="utf-8").count(m.old) != 1]
    for mutation in stale:
        print(f"STALE    {mutation.name}: its text is not found exactly once in {mutation.path}")
    print(f"{len(MUTATIONS) - len(stale)} of {len(MUTATIONS)} mutations still apply")
    return 1 if stale else 0


def main(words: list[str]) -> int:
    if words == ["--check"]:
        return check()
    chosen = [m for m in MUTATIONS if not words or any(w.lower() in m.name.lower() for w in words)]
    with tempfile.TemporaryDirectory(prefix="tl-hand-mutants-") as folder:
        work = Path(folder)
        _copy_project(work)
        verdicts = []
        for mutation in chosen:
            verdict, detail, seconds = run(mutation, work)
            verdicts.append(verdict)
            print(f"{verdict:8} {mutation.name:50} {seconds:5.1f} s  {detail}", flush=True)
    print(f"{verdicts.count('killed')} killed, {verdicts.count('SURVIVED')} survived, "
          f"{verdicts.count('STALE')} stale of {len(chosen)}")
    return 0 if verdicts.count("killed") == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
