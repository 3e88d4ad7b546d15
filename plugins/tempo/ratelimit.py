"""A fixed-window rate limit kept in the store, shared by every API server process.

One row per (bucket, window): a hit is a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``,
atomic on SQLite and PostgreSQL alike, so concurrent requests never both slip under the limit.
Windows older than the previous one are deleted as new ones start.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tempo.store.models import RateLimitHit, utcnow


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    hits: int
    limit: int
    retry_after: int
    """Seconds until the window ends (for a ``Retry-After`` header)."""


def window_start(now: datetime, window: timedelta) -> datetime:
    seconds = int(window.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


def hit(
    session: Session,
    bucket: str,
    *,
    limit: int,
    window: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> Verdict:
    """Count one request of ``bucket`` in the current window; allowed while within ``limit``."""
    now = now or utcnow()
    start = window_start(now, window)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    counted = (
        insert(RateLimitHit)
        .values(bucket=bucket[:255], window_start=start, hits=1)
        .on_conflict_do_update(
            index_elements=[RateLimitHit.bucket, RateLimitHit.window_start],
            set_={"hits": RateLimitHit.hits + 1},
        )
        .returning(RateLimitHit.hits)
    )
    hits = int(session.execute(counted).scalar_one())
    if hits == 1:
        # The first hit of a new window clears windows nobody will count again.
        session.execute(delete(RateLimitHit).where(RateLimitHit.window_start < start - window))
    retry_after = max(1, int((start + window - now).total_seconds()))
    return Verdict(allowed=hits <= limit, hits=hits, limit=limit, retry_after=retry_after)


def network_of(host: str) -> str:
    """The client a limit counts: an IPv4 address, or the /64 of an IPv6 one (a single host may
    hold a whole /64 and pick a new address for every request)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
