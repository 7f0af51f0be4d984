"""resource_path() finds resource files from source and inside a PyInstaller bundle."""

from pathlib import Path

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


def test_resources_travel_with_the_package():
    import tl_desktop

    package = Path(tl_desktop.__file__).resolve().parent
    assert resources.resources_dir().is_relative_to(package)
