"""Requests sent on the public page, held until the address they name confirms them.

Whoever types an address on the public page may not be its owner: until the mailbox answers, a
request is only a row of ``tempo_pending_request`` (what its run will get, its files kept aside)
and one fixed email to that address with a signed confirmation link. The link carries a random
secret; the row is found by the secret's hash, so the store alone cannot confirm anything. The
first confirmation wins (a compare-and-set on ``confirmed_at``); the row is kept until it expires so
a second one is told, then it is purged with its files.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tempo import attachments, links
from tempo.attachments import Upload
from tempo.mail.outbox import enqueue
from tempo.mail.render import render_mail
from tempo.store.models import PendingRequest, Process, utcnow


def key_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def run_id_of(pending: PendingRequest) -> str:
    """The one run a pending request may become: Airflow refuses a second run of this id."""
    return f"public_request__{pending.key_hash[:32]}"


def purge_expired(session: Session, now: datetime | None = None) -> None:
    """Rows (and files) of requests nobody confirmed in time, or confirmed long enough ago."""
    now = now or utcnow()
    keys = list(session.scalars(select(PendingRequest.key_hash).where(PendingRequest.expires_at < now)))
    if not keys:
        return
    session.execute(delete(PendingRequest).where(PendingRequest.key_hash.in_(keys)))
    for key in keys:
        attachments.forget_pending(key)


def hold(
    session: Session,
    *,
    request_type: str,
    type_name: str,
    form: dict[str, Any],
    params: dict[str, Any],
    uploads: list[Upload],
) -> str:
    """Keep the request and queue its confirmation email; return the email's dedup key.

    The email is the same whoever the address belongs to and carries none of the request's text:
    its recipient has not said yet that it asked for anything.
    """
    purge_expired(session)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    pending = PendingRequest(
        key_hash=key_of(secret),
        request_type=request_type,
        email=form["email"],
        form=form,
        params=params,
        files=[
            {"filename": u.filename, "content_type": u.content_type, "size": u.size, "sha256": u.sha256}
            for u in uploads
        ],
        created_at=now,
        expires_at=now + timedelta(seconds=links.CONFIRM_LINK_MAX_AGE),
    )
    session.add(pending)
    session.flush()
    for upload in uploads:
        attachments.write_pending(pending.key_hash, upload)
    mail = render_mail(
        "customer_request_confirm",
        {
            "type_name": type_name,
            "confirm_link": links.request_confirmation_link(secret),
            "hours": links.CONFIRM_LINK_MAX_AGE // 3600,
        },
    )
    key = f"request-confirm:{pending.key_hash}"
    enqueue(session, dedup_key=key, to=[pending.email], mail=mail)
    return key


def find(session: Session, secret: str) -> PendingRequest | None:
    return session.scalar(select(PendingRequest).where(PendingRequest.key_hash == key_of(secret)))


def claim(session: Session, pending_id: int) -> bool:
    """True for exactly one confirmation of the request: the first to get here."""
    result = session.execute(
        update(PendingRequest)
        .where(PendingRequest.id == pending_id, PendingRequest.confirmed_at.is_(None))
        .values(confirmed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, pending_id: int) -> None:
    """The claim undone: the run could not be started, and the link may be used again."""
    session.execute(update(PendingRequest).where(PendingRequest.id == pending_id).values(confirmed_at=None))


def send_status_link(session: Session, pending: PendingRequest, process: Process, type_name: str) -> str:
    """Queue the email that gives the confirmed address its request's status link (the one place
    the link is given); return its dedup key."""
    mail = render_mail(
        "customer_request_follow",
        {
            "process": process,
            "data": pending.form,
            "type_name": type_name,
            "status_link": links.request_status_link(process.id),
        },
    )
    key = f"request-status:{process.id}"
    enqueue(session, dedup_key=key, to=[pending.email], mail=mail, process_id=process.id)
    return key
