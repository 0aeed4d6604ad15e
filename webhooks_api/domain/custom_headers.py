"""A subscription's custom header values: encrypted at rest, masked when shown.

The values are often the receiver's credentials (`Authorization: Bearer ...`), so they are
kept like the signing secret: each value a Fernet ciphertext under WEBHOOKS_ENCRYPTION_KEY
(`subscriptions.header_ciphertexts`, name → ciphertext), decrypted only by the worker
building a request. The names stay readable: API responses show them with every value
replaced by `MASK`, and each attempt's stored request headers keep them with their values
redacted, as the signature headers are. Because a response never carries a value, a client
that sends back what it read would store the mask as its credential: that is refused.
"""

from __future__ import annotations

from webhooks_api.domain.secrets import SecretBox

MASK = "[redacted]"


def encrypt_headers(box: SecretBox, headers: dict[str, str]) -> dict[str, str]:
    return {name: box.encrypt(value) for name, value in headers.items()}


def decrypt_headers(box: SecretBox, ciphertexts: dict[str, str]) -> dict[str, str]:
    return {name: box.decrypt(ciphertext) for name, ciphertext in ciphertexts.items()}


def reencrypt_headers(box: SecretBox, ciphertexts: dict[str, str]) -> dict[str, str]:
    """The same values under the first key (key rotation, `secrets reencrypt`)."""
    return {name: box.reencrypt(ciphertext) for name, ciphertext in ciphertexts.items()}


def masked(headers: dict[str, str]) -> dict[str, str]:
    """The names of `headers` (plain or encrypted), every value replaced by the mask."""
    return dict.fromkeys(headers, MASK)


def redacted(headers: dict[str, str], names) -> dict[str, str]:
    """`headers` with the values of `names` replaced by the mask, for the attempt log."""
    return {name: MASK if name in names else value for name, value in headers.items()}


def mask_errors(headers: dict[str, str]) -> list[str]:
    """A value equal to the mask is what a response showed, not a value to send."""
    return [f"header {name[:64]!r}: {MASK!r} is the mask responses show in place of the "
            "value; send the real value (headers are replaced whole)"
            for name, value in headers.items() if value == MASK]
