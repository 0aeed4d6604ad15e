"""The schema comes from the migrations, and the migrations agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.script import ScriptDirectory
from flask_migrate import Migrate


def test_models_and_migrations_agree(app, test_env):
    """`flask db check` on the migrated test database finds no difference."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webhooks_api", "db", "check"],
        env={**os.environ, **test_env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_single_head(app):
    migrate: Migrate = app.extensions["migrate"].migrate
    with app.app_context():
        script = ScriptDirectory.from_config(migrate.get_config())
        assert len(script.get_heads()) == 1
