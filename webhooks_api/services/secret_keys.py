"""Rotation of WEBHOOKS_ENCRYPTION_KEY: re-encrypt every stored signing secret and custom
header value.

Run after deploying `WEBHOOKS_ENCRYPTION_KEY=new,old` (every process then encrypts with the
new key and still decrypts the old ciphertexts); once it has run, the old key decrypts
nothing that is stored and can be removed.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.custom_headers import reencrypt_headers
from webhooks_api.domain.models import Subscription
from webhooks_api.domain.secrets import SecretBox
from webhooks_api.errors import DomainError


def reencrypt_secrets(session: Session, settings: Settings, batch_size: int = 500) -> int:
    """Re-encrypt the current and previous secret and the custom header values of every
    subscription (deleted ones too, whose history stays readable) with the first key, one
    committed batch at a time. Returns how many subscriptions were rewritten.

    Each row is rewritten only if its ciphertexts are still the ones read: a secret rotated
    or headers replaced meanwhile by the API were already encrypted with the new key and are
    left alone.
    """
    box = SecretBox(settings.encryption_keys)
    rewritten = 0
    after_id = ""
    while True:
        rows = session.execute(
            select(Subscription.id, Subscription.secret_ciphertext,
                   Subscription.previous_secret_ciphertext, Subscription.header_ciphertexts)
            .where(Subscription.id > after_id)
            .order_by(Subscription.id)
            .limit(batch_size)
        ).all()
        if not rows:
            return rewritten
        for row in rows:
            try:
                secret = box.reencrypt(row.secret_ciphertext)
                previous = (box.reencrypt(row.previous_secret_ciphertext)
                            if row.previous_secret_ciphertext else None)
                headers = reencrypt_headers(box, row.header_ciphertexts)
            except InvalidToken:
                session.rollback()
                raise DomainError(
                    f"subscription {row.id}: its secret or a custom header value decrypts "
                    f"with none of the keys in WEBHOOKS_ENCRYPTION_KEY ({rewritten} "
                    "subscriptions re-encrypted so far)"
                ) from None
            rewritten += session.execute(
                update(Subscription)
                .where(Subscription.id == row.id,
                       Subscription.secret_ciphertext == row.secret_ciphertext,
                       Subscription.previous_secret_ciphertext.is_not_distinct_from(
                           row.previous_secret_ciphertext),
                       Subscription.header_ciphertexts == row.header_ciphertexts)
                # Not a change a user made: keep updated_at as it was.
                .values(secret_ciphertext=secret, previous_secret_ciphertext=previous,
                        header_ciphertexts=headers, updated_at=Subscription.updated_at)
            ).rowcount
        session.commit()
        after_id = rows[-1].id
