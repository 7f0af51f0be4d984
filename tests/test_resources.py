"""resource_path() finds resource files from source and inside a PyInstaller bundle."""

import sys

import pytest

from tl_desktop import resources


def test_icons_found_from_source():
    for name in ("app.png", "app.ico", "app.icns"):
        path = resources.resource_path(f"icons/{name}")
        assert path.is_file() and path.stat().st_size > 1000


def test_missing_resource_names_the_folder():
    with pytest.raises(FileNotFoundError, match="icons/nope.png.*resources"):
        resources.resource_path("icons/nope.png")


@pytest.mark.parametrize("bad", ["../pyproject.toml", "/etc/hostname"])
def test_paths_outside_the_resources_folder_are_refused(bad):
    with pytest.raises(ValueError):
        resources.resource_path(bad)


def test_frozen_bundle_uses_meipass(monkeypatch, tmp_path):
    (tmp_path / "resources" / "icons").mkdir(parents=True)
    (tmp_path / "resources" / "icons" / "app.png").write_bytes(b"png")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.is_frozen()
    assert resources.resource_path("icons/app.png") == tmp_path / "resources" / "icons" / "app.png"
