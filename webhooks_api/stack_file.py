"""The connection settings `./scripts/run` writes for the CLI of another terminal.

The run command starts servers whose URLs a reader cannot guess (the embedded PostgreSQL
listens on a socket in ./var). While it runs it keeps them in `stack.env` of its data
directory (./var, or WEBHOOKS_DATA_DIR), and the Flask app (`flask --app webhooks_api ...`)
reads that file when DATABASE_URL is unset outside production, so no URL is pasted. The
file holds URLs only, never a key, and is removed when the stack stops.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "var"
FILE_NAME = "stack.env"
# What a CLI process needs to reach the stack's servers (the broker's keys included).
CONNECTION_SETTINGS = ("DATABASE_URL", "CELERY_BROKER_URL", "WEBHOOKS_REDIS_URL",
                       "WEBHOOKS_BROKER_KEY_PREFIX")


def path(environ: Mapping[str, str]) -> Path:
    """`stack.env` of the data directory; a relative WEBHOOKS_DATA_DIR is the checkout's."""
    return ROOT / environ.get("WEBHOOKS_DATA_DIR", DEFAULT_DATA_DIR) / FILE_NAME


def write(env: Mapping[str, str]) -> Path:
    target = path(env)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={env[name]}" for name in CONNECTION_SETTINGS if env.get(name)]
    target.write_text("# The servers ./scripts/run is running; removed when it stops.\n"
                      + "\n".join(lines) + "\n")
    return target


def remove(env: Mapping[str, str]) -> None:
    path(env).unlink(missing_ok=True)


def fill_in(environ: MutableMapping[str, str]) -> None:
    """Add the running stack's settings to `environ` when it names no database, outside
    production; a setting `environ` has wins."""
    if environ.get("DATABASE_URL") or environ.get("WEBHOOKS_ENV") == "production":
        return
    try:
        text = path(environ).read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and name in CONNECTION_SETTINGS:
            environ.setdefault(name, value)

