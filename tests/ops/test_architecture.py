"""The layout's rules (docs/ARCHITECTURE.md): the import-linter contracts of setup.cfg hold
and fail on a deliberate violation, and no two modules import each other, even through a
deferred import or a chain."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("webhooks_api", "webhooks_worker", "webhooks_dev")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(cwd),
                                                       "PATH": "/usr/bin:/bin"})


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every cycle, as its shortest chain back to where it started (one per set)."""
    cycles, seen = [], set()
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain and frozenset(chain) not in seen:
                seen.add(frozenset(chain))
                cycles.append((module, *chain))
    return cycles


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_deliberate_violation_breaks_the_contracts(tmp_path):
    for name in (*PACKAGES, "setup.cfg"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    ids = tmp_path / "webhooks_api" / "domain" / "ids.py"
    ids.write_text(ids.read_text() + "\nimport webhooks_worker.tasks  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "The API package never imports the worker BROKEN" in result.stdout
    assert "webhooks_api.domain.ids -> webhooks_worker.tasks" in result.stdout


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert import_cycles(graph) == []

    # The check finds a cycle made of a deferred import, as the old `app` <-> `views` was.
    graph.add_import(importer="webhooks_api.config", imported="webhooks_api.app")
    assert ("webhooks_api.app", "webhooks_api.config", "webhooks_api.app") in import_cycles(graph)
