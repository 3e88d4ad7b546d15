"""The outbox: every email Tempo sends is first a row, then a delivery.

Queueing is part of the caller's transaction and idempotent through the message's dedup key, so a
retried step or a second trigger never queues a message twice. Delivery claims one message at a
time with a compare-and-set lease (``pending -> sending``); of two senders only one gets it. A
sender that dies mid-send leaves a lease that runs out, and the message is tried again. Failures are
retried with exponential backoff until ``[tempo] outbox_max_attempts``; the last error is kept.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tempo import config
from tempo.mail.render import RenderedMail
from tempo.store.models import OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600


def enqueue(
    session: Session,
    *,
    dedup_key: str,
    to: Sequence[str],
    mail: RenderedMail,
    cc: Sequence[str] = (),
    process_id: int | None = None,
    task_id: int | None = None,
    attachment_ids: Sequence[int] = (),
) -> OutboxMessage:
    """Queue a message once: a second call with the same key returns the first message unchanged.

    ``attachment_ids`` (of ``tempo_attachment``) are sent as files, read when the message is delivered.
    """
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key))
    if existing is not None:
        return existing
    if not to:
        raise ValueError(f"message {dedup_key!r} has no recipient")
    message = OutboxMessage(
        dedup_key=dedup_key,
        to_addrs=list(to),
        cc_addrs=list(cc),
        subject=mail.subject[:998],
        body_text=mail.text,
        body_html=mail.html,
        process_id=process_id,
        task_id=task_id,
        attachment_ids=list(attachment_ids) or None,
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key))
        assert existing is not None
        return existing
    return message


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


#: Files beyond this many bytes in one message stay behind (the message links to them instead).
MAX_ATTACHED_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class MailFile:
    filename: str
    content_type: str
    data: bytes


def files_of(session: Session, row: OutboxMessage) -> list[MailFile]:
    """The message's attachments, as many as fit in ``MAX_ATTACHED_BYTES``, in the order given."""
    from tempo.attachments import read_attachment
    from tempo.store.models import Attachment

    files: list[MailFile] = []
    total = 0
    for attachment_id in row.attachment_ids or []:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or total + attachment.size > MAX_ATTACHED_BYTES:
            continue
        files.append(MailFile(attachment.filename, attachment.content_type, read_attachment(attachment)))
        total += attachment.size
    return files


def build_message(row: OutboxMessage, sender: str, files: Sequence[MailFile] = ()) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(row.to_addrs)
    if row.cc_addrs:
        message["Cc"] = ", ".join(row.cc_addrs)
    message["Subject"] = row.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"tempo-{row.id}", domain="tempo.local")
    # Lets a receiving system spot a repeat of the same logical message.
    message["X-Tempo-Key"] = row.dedup_key
    message.set_content(row.body_text)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    for file in files:
        maintype, _, subtype = file.content_type.partition("/")
        if not maintype or not subtype or "/" in subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(file.data, maintype=maintype, subtype=subtype, filename=file.filename)
    return message


def send_via_smtp(message: EmailMessage, recipients: Iterable[str]) -> None:
    """Deliver through Airflow's SMTP provider (connection ``[tempo] smtp_conn_id``)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=config.smtp_conn_id()) as hook:
        # The hook builds HTML-only messages; Tempo sends multipart text+HTML, so it hands its own
        # message to the client the hook has connected and authenticated.
        client = cast("smtplib.SMTP", hook._smtp_client)
        if client is None:
            raise RuntimeError("SMTP client not connected")
        client.send_message(message, to_addrs=list(recipients))


def smtp_reachable() -> bool:
    """Whether the SMTP server takes a connection now (the hook connects and logs in, then quits)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=config.smtp_conn_id()) as hook:
            return hook._smtp_client is not None
    except Exception:  # any network or SMTP failure means: not yet
        return False


def _waiting_for_retry(now: datetime) -> Any:
    """Messages that failed before and wait for their back-off to pass."""
    return (
        (OutboxMessage.status == OutboxStatus.PENDING)
        & (OutboxMessage.attempts > 0)
        & (OutboxMessage.next_attempt_at > now)
    )


def retries_waiting(url: str | None = None) -> bool:
    """Whether a message that failed before waits for a later attempt."""
    from tempo.store.engine import read_session

    with read_session(url) as session:
        query = select(OutboxMessage.id).where(_waiting_for_retry(utcnow())).limit(1)
        return session.scalar(query) is not None


def retry_now(url: str | None = None) -> int:
    """Make every message waiting for a retry due now (SMTP is back); the number of messages."""
    from tempo.store.engine import write_session

    now = utcnow()
    with write_session(url) as session:
        result = session.execute(
            update(OutboxMessage).where(_waiting_for_retry(now)).values(next_attempt_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def _claim_next(url: str | None, keys: Sequence[str] | None, now: datetime, owner: str) -> int | None:
    from tempo.store.engine import write_session

    due = or_(
        (OutboxMessage.status == OutboxStatus.PENDING) & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == OutboxStatus.SENDING) & (OutboxMessage.lease_until < now),
    )
    with write_session(url) as session:
        query = select(OutboxMessage.id, OutboxMessage.status).where(due).order_by(OutboxMessage.id).limit(1)
        if keys is not None:
            query = query.where(OutboxMessage.dedup_key.in_(list(keys)))
        row = session.execute(query).first()
        if row is None:
            return None
        claimed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id, due)
            .values(
                status=OutboxStatus.SENDING,
                lease_until=now + LEASE,
                attempts=OutboxMessage.attempts + 1,
                last_error=f"claimed by {owner}",
            )
        ).rowcount  # type: ignore[attr-defined]
        return row.id if claimed == 1 else -1


def _prepared(url: str | None, message_id: int, sender: str) -> tuple[EmailMessage, list[str], int]:
    """The claimed message as it goes out, its recipients and its attempt number."""
    from tempo.store.engine import write_session

    with write_session(url) as session:
        row = session.get_one(OutboxMessage, message_id)
        message = build_message(row, sender, files_of(session, row))
        return message, [*row.to_addrs, *row.cc_addrs], row.attempts


def _failed(url: str | None, message_id: int, exc: Exception, retry_in: timedelta | None) -> None:
    """Record a failed attempt: the message is tried again after ``retry_in``, or never (None)."""
    from tempo.store.engine import write_session

    error = f"{type(exc).__name__}: {exc}"[:2000]
    with write_session(url) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.SENDING)
            .values(
                status=OutboxStatus.FAILED if retry_in is None else OutboxStatus.PENDING,
                last_error=error,
                lease_until=None,
                next_attempt_at=utcnow() + (retry_in or timedelta(0)),
            )
        )
    log.warning("[tempo] mail %s failed: %s", message_id, error)


def deliver_pending(
    url: str | None = None, *, keys: Sequence[str] | None = None, limit: int = 100
) -> DeliveryReport:
    """Send due messages (only those with ``keys`` when given). Safe to run in many processes at once.

    A message that cannot be built (an address with a line break, say) fails at once with its error,
    and the sweep goes on with the next one.
    """
    from tempo.store.engine import write_session

    report = DeliveryReport()
    owner = uuid.uuid4().hex[:8]
    sender = config.mail_from()
    max_attempts = config.outbox_max_attempts()
    for _ in range(limit):
        now = utcnow()
        message_id = _claim_next(url, keys, now, owner)
        if message_id is None:
            break
        if message_id == -1:
            continue  # another sender took it between our read and our claim
        try:
            message, recipients, attempts = _prepared(url, message_id, sender)
        except Exception as exc:  # a bad address or header: no later attempt could build it either
            _failed(url, message_id, exc, retry_in=None)
            report.failed += 1
            continue
        try:
            send_via_smtp(message, recipients)
        except Exception as exc:  # any SMTP or network failure: the message stays for a later attempt
            final = attempts >= max_attempts
            _failed(url, message_id, exc, retry_in=None if final else backoff(attempts))
            if final:
                report.failed += 1
            else:
                report.retrying += 1
            continue
        with write_session(url) as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(status=OutboxStatus.SENT, sent_at=utcnow(), lease_until=None, last_error=None)
            )
        report.sent += 1
    return report


def deliver_now(keys: Sequence[str]) -> None:
    """Try to deliver freshly queued messages at once; what fails stays queued for the clock's sweep."""
    if not keys:
        return
    try:
        report = deliver_pending(keys=keys)
    except Exception:  # the outbox keeps the messages; delivery is retried later
        log.exception("[tempo] immediate delivery failed; the messages stay in the outbox")
        return
    if report.retrying or report.failed:
        log.warning(
            "[tempo] %d message(s) not delivered yet; they stay in the outbox",
            report.retrying + report.failed,
        )
