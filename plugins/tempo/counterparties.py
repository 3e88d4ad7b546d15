"""Counterparties' cards: find a counterparty by its email or create its card, once.

A counterparty (a customer, a supplier) has no login. When it writes in, the process looks its card
up by email (case-insensitive); an unknown address gets a new card, handed to the holder of the
request type's specialist role who has the fewest counterparties. Two first requests from one
address arriving together find or create exactly one card: the lower-cased email is unique in the
store, and the loser of the insert reads the winner's card. Whether a request is the counterparty's
first is one compare-and-set on ``first_request_at``, so exactly one request is "first time".
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tempo.directory import active_person
from tempo.forms import is_email_address
from tempo.store.models import Counterparty, Person, PersonRole, utcnow

log = logging.getLogger(__name__)

_NOT_CODE = re.compile(r"[^A-Z0-9]+")


def email_key(email: str) -> str:
    return email.strip().lower()


def new_code(name: str, email: str, extra: int = 0) -> str:
    """A readable code that is stable for an address: ``ACME-INDUSTRIES-1F3A9C``."""
    slug = _NOT_CODE.sub("-", name.upper()).strip("-")[:40] or "CP"
    digest = hashlib.sha256(email_key(email).encode()).hexdigest().upper()
    return f"{slug}-{digest[: 6 + 4 * extra]}"


def find_by_email(session: Session, email: str) -> Counterparty | None:
    return session.scalar(select(Counterparty).where(Counterparty.email_key == email_key(email)))


def least_busy_holder(session: Session, role_code: str) -> str | None:
    """The active holder of ``role_code`` responsible for the fewest counterparties (then by name)."""
    load = (
        select(func.count(Counterparty.code))
        .where(Counterparty.responsible_username == Person.username)
        .scalar_subquery()
    )
    return session.scalar(
        select(Person.username)
        .join(PersonRole, PersonRole.username == Person.username)
        .where(PersonRole.role_code == role_code, Person.active.is_(True))
        .order_by(load, Person.username)
        .limit(1)
    )


def find_or_create(
    session: Session, *, name: str, email: str, specialist_role: str | None = None
) -> tuple[Counterparty, bool]:
    """The counterparty's card and whether this call created it.

    A card without an active responsible person gets the least busy holder of ``specialist_role``. Raises
    ``ValueError`` for an address mail cannot go to (a run's conf is anybody's to write).
    """
    if not is_email_address(email.strip()):
        raise ValueError(f"{email!r} is not an email address")
    for attempt in range(3):
        card = find_by_email(session, email)
        if card is not None:
            responsible = card.responsible_username
            if specialist_role and (not responsible or active_person(session, responsible) is None):
                card.responsible_username = least_busy_holder(session, specialist_role)
            return card, False
        card = Counterparty(
            code=new_code(name, email, extra=attempt),
            name=name.strip()[:200],
            email=email.strip(),
            responsible_username=least_busy_holder(session, specialist_role) if specialist_role else None,
        )
        try:
            with session.begin_nested():
                session.add(card)
        except IntegrityError:
            # Another request created this address's card first (or, rarely, took the code).
            log.info("[tempo] counterparty card for %s created concurrently; reading it", email_key(email))
            continue
        return card, True
    raise RuntimeError(f"could not find or create a counterparty card for {email_key(email)}")


def mark_first_request(session: Session, code: str) -> bool:
    """True for exactly one request of the counterparty: the first to get here."""
    result = session.execute(
        update(Counterparty)
        .where(Counterparty.code == code, Counterparty.first_request_at.is_(None))
        .values(first_request_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Identified:
    code: str
    name: str
    email: str
    responsible: str | None
    created: bool
    first_time: bool

    def as_record(self) -> dict[str, Any]:
        return {
            "counterparty": self.code,
            "counterparty_name": self.name,
            "counterparty_email": self.email,
            "responsible": self.responsible,
            "first_time": self.first_time,
        }


def identify_counterparty(*, name: str, email: str, specialist_role: str | None = None) -> Identified:
    """Inside a running task: find or create the card and make it the process's counterparty.

    Writes ``counterparty``, ``counterparty_name``, ``counterparty_email``, ``responsible``,
    ``first_time`` and ``status_link`` (the requester's status page) onto the process record.
    Running the task again finds the same card and keeps the first-time flag it had.
    """
    from airflow.sdk import get_current_context

    from tempo import links
    from tempo.runs import process_of_dag_run
    from tempo.store.engine import write_session
    from tempo.store.processes import update_process_data

    context = get_current_context()
    dag_run = context["dag_run"]
    with write_session() as session:
        process = process_of_dag_run(session, context.get("dag"), context["dag_run"])
        card, created = find_or_create(session, name=name, email=email, specialist_role=specialist_role)
        session.flush()
        if "first_time" in (process.data or {}) and process.counterparty_code == card.code:
            first_time = bool(process.data["first_time"])  # a retry of this task
        else:
            first_time = mark_first_request(session, card.code)
        process.counterparty_code = card.code
        identified = Identified(
            code=card.code,
            name=card.name,
            email=card.email or email,
            responsible=card.responsible_username,
            created=created,
            first_time=first_time,
        )
        # The counterparty follows its request on a page of its own; every email to it links there.
        status_link = links.request_status_link(process.id)
        update_process_data(
            session, dag_run.dag_id, dag_run.run_id, {**identified.as_record(), "status_link": status_link}
        )
    return identified
