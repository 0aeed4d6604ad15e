"""Signing secrets, API keys and portal session secrets: generation, encryption at rest,
hashing.

Signing secrets must be recoverable to sign, so they are encrypted with Fernet
(`WEBHOOKS_ENCRYPTION_KEY`, several comma-separated keys allowed: the first encrypts, all
decrypt). Rotating the key: put the new key first (`new,old`), deploy, run
`flask --app webhooks_api secrets reencrypt` (every ciphertext re-encrypted with the new
key), then drop the old key. API keys and portal session secrets only need checking, so
only their SHA-256 is kept.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet

SECRET_PREFIX = "whsec_"
API_KEY_PREFIX = "whk_"


def new_signing_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the Standard Webhooks format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key is the decoded part of the secret, not the secret string itself."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


class SecretBox:
    """Encrypts and decrypts signing secrets with the configured keys."""

    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")

    def reencrypt(self, ciphertext: str) -> str:
        """The same secret encrypted with the first key (MultiFernet.rotate)."""
        return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    return _sha256(api_key)


def new_portal_secret() -> str:
    """The secret half of a portal session token (`<session id>.<secret>`)."""
    return secrets.token_urlsafe(32)


def hash_portal_secret(secret: str) -> str:
    return _sha256(secret)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
