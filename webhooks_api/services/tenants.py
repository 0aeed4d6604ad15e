"""Tenants and their API keys (the CLI's commands and the API's authentication)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from webhooks_api.domain.ids import EVENT_ID_PATTERN, new_id
from webhooks_api.domain.models import ApiKey, Tenant
from webhooks_api.domain.secrets import hash_api_key, new_api_key
from webhooks_api.errors import ConflictError, InvalidInputError, NotFoundError


def create_tenant(session: Session, tenant_id: str, name: str | None = None) -> Tenant:
    if not EVENT_ID_PATTERN.match(tenant_id):
        raise InvalidInputError("tenant id must be 1-128 characters of A-Z a-z 0-9 _ -")
    if session.get(Tenant, tenant_id) is not None:
        raise ConflictError(f"tenant {tenant_id} already exists")
    tenant = Tenant(id=tenant_id, name=name)
    session.add(tenant)
    session.commit()
    return tenant


@dataclass(frozen=True)
class IssuedKey:
    record: ApiKey
    api_key: str  # shown once, never stored


def create_api_key(session: Session, tenant_id: str, name: str | None = None) -> IssuedKey:
    if session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id} does not exist")
    api_key = new_api_key()
    record = ApiKey(id=new_id("key"), tenant_id=tenant_id, name=name,
                    key_prefix=api_key[:10], key_hash=hash_api_key(api_key))
    session.add(record)
    session.commit()
    return IssuedKey(record=record, api_key=api_key)


def list_api_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    if session.get(Tenant, tenant_id) is None:
        raise NotFoundError(f"tenant {tenant_id} does not exist")
    return list(session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
    ))


def revoke_api_key(session: Session, key_id: str) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFoundError(f"API key {key_id} does not exist")
    if record.revoked_at is None:
        record.revoked_at = func.now()
        session.commit()
    return record


# The key is looked up and, when its last use is older than a minute, marked used, in one
# statement: only then is there a write (and a WAL flush at the commit), not per request.
_AUTHENTICATE = text("""
    WITH found AS (
        SELECT id, tenant_id, last_used_at FROM api_keys
        WHERE key_hash = :key_hash AND revoked_at IS NULL),
    touched AS (
        UPDATE api_keys SET last_used_at = now() FROM found
        WHERE api_keys.id = found.id
          AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute'))
    SELECT tenant_id FROM found
""")


def tenant_for_api_key(session: Session, api_key: str) -> str | None:
    """The tenant an unrevoked key belongs to, or None; records when the key was last used
    (to the minute)."""
    row = session.execute(_AUTHENTICATE, {"key_hash": hash_api_key(api_key)}).first()
    session.commit()  # without a write, a COMMIT that waits for no flush
    return None if row is None else row.tenant_id
