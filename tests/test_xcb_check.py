"""The X11 check before the window opens: missing libraries of Qt's xcb plugin are named with their packages."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from tl_desktop import window_command
from tl_desktop.gui import xcb_check


@pytest.fixture(scope="module")
def needs_a_missing_library(tmp_path_factory) -> Path:
    """A real shared library linked against ``libtlmissing.so.0``, which is then deleted."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build a library with a missing dependency")
    folder = tmp_path_factory.mktemp("libs")
    (folder / "empty.c").write_text("int tl_missing(void) { return 1; }\n")
    (folder / "plugin.c").write_text("int tl_missing(void);\nint tl_plugin(void) { return tl_missing(); }\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(folder / "libtlmissing.so.0"), str(folder / "empty.c"),
                    "-Wl,-soname,libtlmissing.so.0"], check=True)
    plugin = folder / "libqxcb.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(plugin), str(folder / "plugin.c"),
                    str(folder / "libtlmissing.so.0"), "-Wl,--no-as-needed"], check=True)
    (folder / "libtlmissing.so.0").unlink()
    return plugin


def test_the_installed_plugin_loads_here():
    plugin = xcb_check.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert xcb_check.missing_libraries(plugin) == []


def test_a_missing_library_is_found_with_ldd_and_without(needs_a_missing_library, monkeypatch):
    assert xcb_check.missing_libraries(needs_a_missing_library) == ["libtlmissing.so.0"]
    monkeypatch.setattr(xcb_check.shutil, "which", lambda name: None)  # a system without ldd
    assert xcb_check.missing_libraries(needs_a_missing_library) == ["libtlmissing.so.0"]


def test_ldd_output_is_read():
    text = ("\tlinux-vdso.so.1 (0x00007ffd)\n\tlibxcb-cursor.so.0 => not found\n"
            "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f94)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n")
    assert xcb_check.ldd_libraries(text) == {"libxcb-cursor.so.0": None,
                                             "libxcb.so.1": "/lib/x86_64-linux-gnu/libxcb.so.1"}


@pytest.mark.parametrize(("library", "package"), [
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libxcb-util.so.1", "libxcb-util1"), ("libdbus-1.so.3", "libdbus-1-3")])
def test_debian_package_names(library, package):
    assert xcb_check.debian_package(library) == package


@pytest.mark.parametrize(("environ", "expected"), [
    ({"DISPLAY": ":0"}, True), ({}, False), ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, False),
    ({"QT_QPA_PLATFORM": "xcb"}, True), ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, False)])
def test_when_qt_uses_xcb(environ, expected):
    assert xcb_check.uses_xcb(environ, platform="linux") is expected
    assert xcb_check.uses_xcb(environ, platform="win32") is False


def test_the_window_command_names_the_packages_and_opens_nothing(needs_a_missing_library, monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(xcb_check, "xcb_plugin", lambda: needs_a_missing_library)
    code = window_command.open_window(argparse.Namespace(quit_after_show=True))
    err = capsys.readouterr().err
    assert code == 2
    assert "libtlmissing.so.0" in err and "sudo apt-get install libtlmissing0" in err
    assert "Traceback" not in err
