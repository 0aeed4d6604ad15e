"""The subscriptions a portal session is bound to, enforced on the database session that
serves its request.

A bound session must meet the tenant's other subscriptions, and their deliveries, as it
meets another tenant's: absent from lists, 404 by id; and it may create none. Rather than
give every use case a new argument (and trust each future one to honour it), the scope is
put on the request's SQLAlchemy session: every ORM statement on Subscription or Delivery
gets the bound ids as criteria (`with_loader_criteria` in `do_orm_execute`, SQLAlchemy's
documented way to filter rows globally), and a flush that would add a Subscription is
refused with 403. Statements of a session without a scope are untouched. Raw SQL
(`text()`) is not rewritten: the use cases that run some (the stats) first read the
subscription through the ORM, which answers 404 outside the scope.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from webhooks_api.domain.models import Delivery, Subscription
from webhooks_api.errors import ForbiddenError

_SCOPE = "webhooks.portal_subscription_ids"


def limit_to_subscriptions(session: Session, subscription_ids: Collection[str]) -> None:
    """From now on `session` sees only these subscriptions and their deliveries."""
    session.info[_SCOPE] = tuple(subscription_ids)


def clear_subscription_scope(session: Session) -> None:
    session.info.pop(_SCOPE, None)


@event.listens_for(Session, "do_orm_execute")
def _add_scope_criteria(state: ORMExecuteState) -> None:
    subscription_ids = state.session.info.get(_SCOPE)
    if subscription_ids is None or not state.is_orm_statement:  # text() is our own SQL
        return
    if state.is_column_load or state.is_relationship_load:  # of rows already in scope
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(Subscription, Subscription.id.in_(subscription_ids),
                                 include_aliases=True),
            with_loader_criteria(Delivery, Delivery.subscription_id.in_(subscription_ids),
                                 include_aliases=True))


@event.listens_for(Session, "before_flush")
def _refuse_new_subscriptions(session: Session, flush_context, instances) -> None:
    if session.info.get(_SCOPE) is None:
        return
    refused = [instance for instance in session.new if isinstance(instance, Subscription)]
    if refused:
        for instance in refused:  # not left pending for a later flush of this session
            session.expunge(instance)
        raise ForbiddenError("this portal session is bound to its subscriptions; it "
                             "cannot create one", error_code="portal_session_bound")
