"""CHANGELOG.md's newest release is the version setup.cfg declares (the one the User-Agent
of every delivery names), and its entries keep Keep a Changelog's form (an `[Unreleased]`
section on top collects what is not released yet)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_newest_release_is_setup_cfgs_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))),
                              reverse=True), "newest first"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert releases[0] == setup["metadata"]["version"]
    assert set(re.findall(r"^### (.+)$", text, re.M)) <= SECTIONS
    # Besides the releases, at most one `## [Unreleased]`, above them all (Keep a Changelog).
    unreleased = re.findall(r"^## \[Unreleased\]$", text, re.M)
    assert len(unreleased) <= 1
    if unreleased:
        assert text.index("## [Unreleased]") < text.index(f"## [{releases[0]}]")
    assert len(re.findall(r"^## ", text, re.M)) == len(releases) + len(unreleased), \
        "every release dated"
