"""The self-test a support person asks a user to run: it passes from source and reports failures."""

import io
import os
import subprocess
import sys

import pytest

from tl_desktop import selftest


def test_self_test_passes_from_source(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "tl_desktop", "--self-test"], capture_output=True, text=True,
                          env=env, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, _ in selftest.STEPS:
        assert f"[ok]   {name}" in done.stdout
    assert "self-test passed" in done.stdout
    assert "weights bundled" in done.stdout
    assert "model.onnx" in done.stdout and "parity check passed on 6 validation images" in done.stdout
    assert "onnxruntime " in done.stdout  # its version, in the environment step
    assert not list(tmp_path.glob("tl-desktop-selftest-*")), "the self-test left its temporary folder behind"


def test_first_failure_stops_with_its_reason(monkeypatch):
    ran = []

    def ok(state):
        ran.append("ok")
        return "fine"

    def broken(state):
        raise selftest.SelfTestFailure("the model file is missing")

    def never(state):
        ran.append("never")
        return "should not run"

    monkeypatch.setattr(selftest, "STEPS", (("first", ok), ("second", broken), ("third", never)))
    out = io.StringIO()
    assert selftest.run_self_test(out) == 1
    text = out.getvalue()
    assert "[ok]   first" in text
    assert "[FAIL] second" in text and "the model file is missing" in text
    assert "self-test FAILED at step 'second'" in text
    assert ran == ["ok"]


def test_unexpected_error_prints_its_type_and_traceback(monkeypatch):
    def crash(state):
        raise KeyError("classes")

    monkeypatch.setattr(selftest, "STEPS", (("crash", crash),))
    out = io.StringIO()
    assert selftest.run_self_test(out) == 1
    assert "KeyError: 'classes'" in out.getvalue()
    assert "Traceback" in out.getvalue()


def test_weights_cache_is_restored(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(selftest, "STEPS", (("look", lambda state: seen.append(os.environ["TL_DESKTOP_CACHE_DIR"]) or "x"),))
    assert selftest.run_self_test(io.StringIO()) == 0
    assert seen[0] != str(tmp_path)
    assert os.environ["TL_DESKTOP_CACHE_DIR"] == str(tmp_path)


def test_cli_flag_runs_the_self_test(monkeypatch):
    from tl_desktop import cli

    monkeypatch.setattr(selftest, "STEPS", (("only", lambda state: "done"),))
    assert cli.main(["--self-test"]) == 0


def test_a_refused_onnx_export_fails_its_step_with_the_reason(monkeypatch, tmp_path):
    from tl_desktop.engine.workflows import onnx_export

    def refuse(*args, **kwargs):
        raise onnx_export.OnnxExportRefused("parity check FAILED on 6 validation images: same top class for 5 of 6")

    monkeypatch.setattr(onnx_export, "export_onnx", refuse)
    state = selftest.SelfTestState(tmp_path)
    state.fit = type("Fit", (), {"model_path": tmp_path / "model.tlmodel"})()
    with pytest.raises(selftest.SelfTestFailure, match="same top class for 5 of 6"):
        selftest._onnx_export(state)
