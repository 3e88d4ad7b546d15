"""The store-backed rate limit: counted atomically, per client, per window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tempo.ratelimit import hit
from tempo.store.engine import read_session, write_session
from tempo.store.models import RateLimitHit

NOON = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def count(bucket: str, limit: int = 3, now: datetime = NOON):
    with write_session() as session:
        return hit(session, bucket, limit=limit, now=now)


def test_a_client_gets_its_limit_per_window(store):
    verdicts = [count("ip:10.0.0.1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].hits == 4 and verdicts[-1].retry_after == 3600 - 30
    assert count("ip:10.0.0.2").allowed  # another client has its own count
    assert count("ip:10.0.0.1", now=NOON + timedelta(hours=1)).allowed  # a new window


def test_old_windows_are_cleared(store):
    count("ip:a")
    count("ip:b", now=NOON + timedelta(hours=1))
    count("ip:c", now=NOON + timedelta(hours=3))
    with read_session() as session:
        buckets = session.scalars(select(RateLimitHit.bucket).order_by(RateLimitHit.bucket)).all()
    assert buckets == ["ip:c"]


def test_concurrent_hits_never_exceed_the_limit(store):
    barrier = threading.Barrier(10)
    allowed: list[bool] = []

    def run() -> None:
        barrier.wait(timeout=30)
        allowed.append(count("ip:burst", limit=4).allowed)

    threads = [threading.Thread(target=run) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(allowed) == [False] * 6 + [True] * 4


def test_a_client_is_its_ipv4_address_or_its_ipv6_64():
    from tempo.ratelimit import network_of

    assert network_of("192.0.2.7") == "192.0.2.7"
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert network_of("testclient") == "testclient"
