"""The packages of the distribution: what setup.cfg's declarative `find:` cannot say.

`migrations/` stays at the top level of the checkout (where Flask-Migrate's commands and
reviewers look for it) and ships in the wheel as the package `webhooks_migrations`, so an
installed service upgrades its schema with `flask --app webhooks_api db upgrade` outside
the checkout (webhooks_api.app finds it by that name, in the checkout and installed
alike). A bare `migrations` would be a poor top-level name in site-packages.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["webhooks_api*", "webhooks_worker*", "webhooks_dev*"]),
              "webhooks_migrations"],
    package_dir={"webhooks_migrations": "migrations"},
    # Here and not in setup.cfg, which setuptools ignores for an option setup() sets.
    # Alembic reads the revisions by path: data to it, not a subpackage.
    package_data={"webhooks_api.http": ["static/console/*", "templates/*"],
                  "webhooks_migrations": ["README", "alembic.ini", "script.py.mako",
                                          "versions/*.py"]},
)
