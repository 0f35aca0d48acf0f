"""Chromium discovery order and launch options."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from crawler.downloader.chromium import (
    IMAGES_OFF,
    BrowserNotFoundError,
    find_chromium,
    find_headless_shell,
    launch_options,
    should_abort_request,
    signing_launch_options,
)


def _exe(path: Path) -> str:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_explicit_env_wins(tmp_path: Path) -> None:
    explicit = _exe(tmp_path / "my-chrome")
    other = tmp_path / "bin"
    other.mkdir()
    _exe(other / "chromium")
    assert find_chromium({"TAGARCHIVE_CHROMIUM": explicit, "PATH": str(other)}) == explicit


def test_explicit_env_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BrowserNotFoundError, match="not an executable"):
        find_chromium({"TAGARCHIVE_CHROMIUM": str(tmp_path / "missing")})


def test_path_order(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    chrome = _exe(bin_dir / "google-chrome")
    assert find_chromium({"PATH": str(bin_dir)}) == chrome
    chromium = _exe(bin_dir / "chromium")
    assert find_chromium({"PATH": str(bin_dir)}) == chromium


def test_playwright_download_is_the_last_resort(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "ms-playwright"
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(cache))
    assert find_chromium({"PATH": str(tmp_path)}) is None
    target = cache / "chromium-1200" / "chrome-linux64"
    target.mkdir(parents=True)
    bundled = _exe(target / "chrome")
    assert find_chromium({"PATH": str(tmp_path)}) == bundled


def test_launch_options() -> None:
    options = launch_options("/usr/bin/chromium")
    assert options["executable_path"] == "/usr/bin/chromium"
    assert options["headless"] is True
    assert "--disable-background-networking" in options["args"]
    assert ("--no-sandbox" in options["args"]) == (os.geteuid() == 0)
    assert "executable_path" not in launch_options(None)
    # the crawl's browser never asks for images; plain launches (reports, baselines) do
    assert IMAGES_OFF not in options["args"]
    assert IMAGES_OFF in launch_options("/usr/bin/chromium", images=False)["args"]
    from crawler import settings

    assert IMAGES_OFF in settings.PLAYWRIGHT_LAUNCH_OPTIONS["args"]


@pytest.mark.parametrize(("kind", "blocked"), [("image", True), ("font", True), ("media", True),
                                               ("script", False), ("fetch", False),
                                               ("xhr", False), ("document", False)])
def test_asset_blocking(kind: str, blocked: bool) -> None:
    assert should_abort_request(SimpleNamespace(resource_type=kind)) is blocked


def test_headless_shell_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "ms-playwright"
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(cache))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "chromium")  # the full browser is not a shell
    assert find_headless_shell({"PATH": str(bin_dir)}) is None
    target = cache / "chromium_headless_shell-1255" / "chrome-headless-shell-linux64"
    target.mkdir(parents=True)
    bundled = _exe(target / "chrome-headless-shell")
    assert find_headless_shell({"PATH": str(bin_dir)}) == bundled
    debian = _exe(bin_dir / "chromium-headless-shell")
    assert find_headless_shell({"PATH": str(bin_dir)}) == debian
    explicit = _exe(tmp_path / "my-shell")
    assert find_headless_shell({"PATH": str(bin_dir),
                                "TAGARCHIVE_HEADLESS_SHELL": explicit}) == explicit
    assert find_headless_shell({"PATH": str(bin_dir), "TAGARCHIVE_HEADLESS_SHELL": "off"}) is None
    with pytest.raises(BrowserNotFoundError, match="TAGARCHIVE_HEADLESS_SHELL"):
        find_headless_shell({"TAGARCHIVE_HEADLESS_SHELL": str(tmp_path / "missing")})


def test_signing_launch_options_follow_the_shell(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    shell = _exe(tmp_path / "shell")
    monkeypatch.setenv("TAGARCHIVE_HEADLESS_SHELL", shell)
    options = signing_launch_options()
    assert options["executable_path"] == shell
    assert IMAGES_OFF in options["args"]
    assert signing_launch_options(attached=True) == {}  # the user's browser signs
    monkeypatch.setenv("TAGARCHIVE_HEADLESS_SHELL", "off")
    assert signing_launch_options() == {}
