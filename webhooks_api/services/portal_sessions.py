"""Portal sessions: short-lived, scoped credentials with which a tenant's own customer
manages its webhooks in the embedded portal, never holding the tenant's API key.

The tenant's server creates one (API key) and puts its URL, `/portal/<id>#<token>`, in an
iframe. The token is `<session id>.<secret>`: the id, which is no secret (it is in the
page's path so the server can choose the page's headers), finds the row by its primary
key; the SHA-256 of the secret is compared with the stored one in constant time
(hmac.compare_digest). Only that hash is stored; the token is shown once, in the answer
to the create.

A session may be bound to some of the tenant's subscriptions (the others do not exist for
it, and it creates none: portal_scope) and may be read-only (every write refused).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webhooks_api.domain.ids import new_id
from webhooks_api.domain.models import PortalSession, Subscription
from webhooks_api.domain.secrets import hash_portal_secret, new_portal_secret
from webhooks_api.errors import InvalidInputError, NotFoundError, UnauthorizedError

ID_PREFIX = "pss"
SESSION_ID_PATTERN = re.compile(rf"^{ID_PREFIX}_[A-Za-z0-9]{{1,64}}$")
PAGE_PATH = "/portal"
DEFAULT_TTL_SECONDS = 3600
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 86400
MAX_BOUND_SUBSCRIPTIONS = 100


@dataclass(frozen=True)
class IssuedPortalSession:
    """A new session and its token, returned once."""

    record: PortalSession
    token: str

    @property
    def url(self) -> str:
        """The page's path with the token in the fragment, which a browser never sends."""
        return f"{PAGE_PATH}/{self.record.id}#{self.token}"

    def __getattr__(self, name: str):
        return getattr(self.record, name)


def create_portal_session(session: Session, tenant_id: str, *,
                          ttl_seconds: int = DEFAULT_TTL_SECONDS,
                          subscription_ids: list[str] | None = None,
                          read_only: bool = False) -> IssuedPortalSession:
    """A session valid for `ttl_seconds`; bound to `subscription_ids` (live subscriptions
    of the tenant) when given, else to all of the tenant's."""
    if subscription_ids is not None:
        subscription_ids = list(dict.fromkeys(subscription_ids))
        live = set(session.scalars(select(Subscription.id).where(
            Subscription.tenant_id == tenant_id, Subscription.id.in_(subscription_ids),
            Subscription.deleted_at.is_(None))))
        if unknown := [i for i in subscription_ids if i not in live]:
            raise InvalidInputError("the portal session is not valid", {
                "subscription_ids": [f"subscription {i} not found" for i in unknown]})
    secret = new_portal_secret()
    record = PortalSession(
        id=new_id(ID_PREFIX), tenant_id=tenant_id, secret_hash=hash_portal_secret(secret),
        subscription_ids=subscription_ids, read_only=read_only,
        expires_at=func.now() + timedelta(seconds=ttl_seconds))
    session.add(record)
    session.commit()
    return IssuedPortalSession(record=record, token=f"{record.id}.{secret}")


def revoke_portal_session(session: Session, tenant_id: str, session_id: str) -> None:
    """Revoke at once (again is a no-op); its token answers 401 from now on."""
    record = None
    if SESSION_ID_PATTERN.match(session_id):
        record = session.scalar(select(PortalSession).where(
            PortalSession.id == session_id, PortalSession.tenant_id == tenant_id))
    if record is None:
        raise NotFoundError(f"portal session {session_id} not found")
    if record.revoked_at is None:
        record.revoked_at = func.now()
    session.commit()


def portal_session_tenant(session: Session, session_id: str) -> str | None:
    """The tenant of a session, revoked and expired ones included (their page still says
    why they no longer work), or None for an unknown id."""
    if not SESSION_ID_PATTERN.match(session_id):
        return None
    tenant_id = session.scalar(select(PortalSession.tenant_id)
                               .where(PortalSession.id == session_id))
    session.commit()
    return tenant_id


def is_portal_token(credential: str) -> bool:
    """Whether a Bearer credential has the shape of a portal session token."""
    session_id, dot, secret = credential.partition(".")
    return bool(dot and secret) and SESSION_ID_PATTERN.match(session_id) is not None


@dataclass(frozen=True)
class PortalAccess:
    """What a valid portal token may do."""

    session_id: str
    tenant_id: str
    subscription_ids: frozenset[str] | None  # None: every subscription of the tenant
    read_only: bool
    expires_at: datetime

    @property
    def can_create(self) -> bool:
        return not self.read_only and self.subscription_ids is None


class PortalSessionRefusedError(UnauthorizedError):
    """A token that is unknown, revoked or expired; `error_code` says which."""


def portal_access(session: Session, token: str) -> PortalAccess:
    """The access a token grants, or PortalSessionRefusedError."""
    row = None
    if is_portal_token(token):
        session_id, _, secret = token.partition(".")
        row = session.execute(select(
            PortalSession.id, PortalSession.tenant_id, PortalSession.secret_hash,
            PortalSession.subscription_ids, PortalSession.read_only,
            PortalSession.expires_at, PortalSession.revoked_at,
            (PortalSession.expires_at <= func.now()).label("expired"),
        ).where(PortalSession.id == session_id)).first()
        session.commit()  # ends the read; nothing was written
    if row is None or not hmac.compare_digest(row.secret_hash, hash_portal_secret(secret)):
        raise PortalSessionRefusedError("unknown portal session token",
                                        error_code="portal_session_invalid")
    if row.revoked_at is not None:
        raise PortalSessionRefusedError("this portal session was revoked",
                                        error_code="portal_session_revoked")
    if row.expired:
        raise PortalSessionRefusedError("this portal session has expired",
                                        error_code="portal_session_expired")
    subscription_ids = (None if row.subscription_ids is None
                        else frozenset(row.subscription_ids))
    return PortalAccess(row.id, row.tenant_id, subscription_ids, row.read_only,
                        row.expires_at)
