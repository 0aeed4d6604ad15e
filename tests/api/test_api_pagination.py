"""Keyset pagination: every item exactly once, newest first, also while rows arrive."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.api_support import API, create_subscription, seed_deliveries


def page_through(client, tenant, path: str, limit: int,
                 between_pages: Callable[[], None] = lambda: None) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query_string=query, headers=tenant["headers"])
        assert response.status_code == 200, response.json
        pages.append(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages
        between_pages()


def newest_first(items: list[dict]) -> bool:
    keys = [(item["created_at"], item["id"]) for item in items]
    return keys == sorted(keys, reverse=True)


def test_120_subscriptions_in_pages_of_50_each_exactly_once(client, tenant):
    created = [create_subscription(client, tenant)["id"] for _ in range(120)]
    pages = page_through(client, tenant, f"{API}/subscriptions", 50)
    assert [len(page) for page in pages] == [50, 50, 20]
    seen = [item["id"] for page in pages for item in page]
    assert sorted(seen) == sorted(created)
    assert newest_first([item for page in pages for item in page])
    assert seen[0] == created[-1], "the newest comes first"


def test_paging_while_subscriptions_are_created_skips_and_repeats_nothing(client, tenant):
    created = [create_subscription(client, tenant)["id"] for _ in range(120)]
    arrived: list[str] = []

    def insert_more():
        arrived.extend(create_subscription(client, tenant)["id"] for _ in range(7))

    pages = page_through(client, tenant, f"{API}/subscriptions", 50, insert_more)
    seen = [item["id"] for page in pages for item in page]
    assert len(seen) == len(set(seen)) == 120 and set(seen) == set(created)
    assert len(arrived) == 14
    everything = page_through(client, tenant, f"{API}/subscriptions", 250)
    assert len(everything) == 1 and len(everything[0]) == 134


def test_120_deliveries_sharing_one_timestamp_page_by_id(client, tenant, session):
    subscription = create_subscription(client, tenant)
    seeded = seed_deliveries(session, tenant["id"], subscription["id"], 120)
    arrived: list[str] = []

    def insert_more():
        arrived.extend(seed_deliveries(session, tenant["id"], subscription["id"], 5))

    pages = page_through(client, tenant, f"{API}/deliveries", 50, insert_more)
    assert [len(page) for page in pages] == [50, 50, 20]
    seen = [item["id"] for page in pages for item in page]
    assert len(set(seen)) == 120 and set(seen) == set(seeded)
    assert len({item["created_at"] for page in pages for item in page}) == 1
    assert newest_first([item for page in pages for item in page])
    by_subscription = page_through(client, tenant,
                                   f"{API}/subscriptions/{subscription['id']}/deliveries", 50)
    assert len({item["id"] for page in by_subscription for item in page}) == 130


def test_default_page_is_50(client, tenant, session):
    subscription = create_subscription(client, tenant)
    seed_deliveries(session, tenant["id"], subscription["id"], 51)
    page = client.get(f"{API}/deliveries", headers=tenant["headers"]).json
    assert len(page["items"]) == 50 and page["next_cursor"]
