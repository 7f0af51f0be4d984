"""A loop of symbolic links is reported as a loop, never as an empty file (issue 14, item 9)."""

from __future__ import annotations

import os
import sys

import pytest

from tl_desktop.cli import main
from tl_desktop.engine.data.images import ImageLoadError, load_rgb, unreachable_reason

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="symbolic links need privileges on Windows")


@pytest.fixture
def loop(tmp_path):
    os.symlink(tmp_path / "b.jpg", tmp_path / "a.jpg")
    os.symlink(tmp_path / "a.jpg", tmp_path / "b.jpg")
    return tmp_path / "a.jpg"


def test_loading_a_link_loop_names_the_loop(loop):
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(loop)
    assert "a loop of symbolic links" in str(caught.value) and "empty" not in str(caught.value)


def test_unreachable_reasons(loop, tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    assert unreachable_reason(loop).startswith("a loop of symbolic links")
    assert unreachable_reason(tmp_path / "dangling.jpg") == "a link to something that does not exist"
    assert unreachable_reason(tmp_path / "never.jpg") == "does not exist"


def test_predict_on_a_link_loop_says_so(loop, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path / "m.tlmodel"), str(loop)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {loop}: a loop of symbolic links (it never leads to a file)"
