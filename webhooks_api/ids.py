"""Public identifiers: a type prefix and 24 random URL-safe characters, as Stripe does."""

import re
import secrets

ID_PATTERN = re.compile(r"^[a-z]{3,4}_[A-Za-z0-9]{1,64}$")
EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))
