"""What the browser tests share: one headless Chromium and one web server (the Procfile's
`web` line) for the whole run, and the tenant's own API calls to that server."""

from __future__ import annotations

import pytest

from tests.support.console_support import Api, chromium
from tests.support.processes import web


@pytest.fixture(scope="session")
def base_url(app, test_env):
    with web(test_env, workers=2) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def tenant_api(base_url, tenant):
    return Api(base_url, tenant)
