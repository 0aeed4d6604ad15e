"""The production profile refuses to start with an unsafe setting and names it: through
the app factory (web, CLI) and through the worker's start."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from cryptography.fernet import Fernet

from tests.conftest import ROOT
from webhooks_api import create_app
from webhooks_api.config import DEVELOPMENT_ENCRYPTION_KEY, ConfigError, load_settings

# Every setting the profile judges; a refusal must name the wrong one and no other.
JUDGED = ("DATABASE_URL", "CELERY_BROKER_URL", "WEBHOOKS_ENCRYPTION_KEY", "FLASK_DEBUG",
          "WEBHOOKS_REQUIRE_HTTPS", "WEBHOOKS_ALLOW_PRIVATE_TARGETS", "WEBHOOKS_CA_BUNDLE")

UNSAFE = [
    ("WEBHOOKS_ENCRYPTION_KEY", ""),  # not set: the development key would be used
    ("WEBHOOKS_ENCRYPTION_KEY", DEVELOPMENT_ENCRYPTION_KEY),
    ("WEBHOOKS_ENCRYPTION_KEY", f"{Fernet.generate_key().decode()},{DEVELOPMENT_ENCRYPTION_KEY}"),
    ("WEBHOOKS_ENCRYPTION_KEY", "not-a-fernet-key"),
    ("FLASK_DEBUG", "1"),
    ("FLASK_DEBUG", "true"),
    ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("WEBHOOKS_REQUIRE_HTTPS", "false"),
    ("DATABASE_URL", ""),
    ("CELERY_BROKER_URL", ""),
    ("WEBHOOKS_CA_BUNDLE", "/nonexistent/ca.pem"),
]


@pytest.fixture
def production_env(test_env) -> dict[str, str]:
    """A safe production configuration; blank values override the test runner's env."""
    return {
        **test_env,
        "WEBHOOKS_ENV": "production",
        "WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WEBHOOKS_BROKER_KEY_PREFIX": f"{test_env['WEBHOOKS_BROKER_KEY_PREFIX']}prod-"
                                      f"{uuid.uuid4().hex[:6]}:",
        "FLASK_DEBUG": "", "WEBHOOKS_REQUIRE_HTTPS": "", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "",
        "WEBHOOKS_CA_BUNDLE": "",
    }


def _names_only(message: str, setting: str) -> None:
    assert setting in message
    assert [name for name in JUDGED if name in message] == [setting], message


def test_safe_production_settings_load(production_env):
    settings = load_settings(production_env)
    assert (settings.env, settings.require_https, settings.allow_private_targets,
            settings.debug) == ("production", True, False, False)


@pytest.mark.parametrize("setting, value", UNSAFE)
def test_create_app_refuses_unsafe_production_setting(production_env, setting, value):
    with pytest.raises(ConfigError) as refused:
        create_app({**production_env, setting: value})
    _names_only(str(refused.value), setting)


def test_every_unsafe_setting_is_named_at_once(production_env):
    with pytest.raises(ConfigError) as refused:
        create_app({**production_env, "FLASK_DEBUG": "1", "WEBHOOKS_REQUIRE_HTTPS": "0",
                    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1"})
    for setting in ("FLASK_DEBUG", "WEBHOOKS_REQUIRE_HTTPS", "WEBHOOKS_ALLOW_PRIVATE_TARGETS"):
        assert setting in str(refused.value)


@pytest.mark.parametrize("setting, value", [
    ("WEBHOOKS_ENCRYPTION_KEY", ""), ("FLASK_DEBUG", "1"),
    ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"), ("WEBHOOKS_REQUIRE_HTTPS", "false"),
])
def test_worker_refuses_to_start(production_env, setting, value):
    """The Procfile's worker exits non-zero before consuming anything, and its output
    names the setting."""
    finished = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "webhooks_worker.celery_app", "worker",
         "--pool=gevent", "--concurrency=10", "--loglevel=INFO"],
        env={**os.environ, **production_env, setting: value}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 1
    refusals = [line for line in finished.stderr.splitlines()
                if line.startswith("webhooks worker: refusing to start:")]
    assert refusals, finished.stderr
    for refusal in refusals:
        _names_only(refusal, setting)
