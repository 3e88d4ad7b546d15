"""Firing SLA timers: reminders, the overdue mark, escalations and expiry of one task.

The clock (``tempo.clock``) finds tasks whose ``sla_next_at`` has come and calls ``fire_due`` for
each. Firing a timer (``fire``) is one transaction that first inserts ``tempo_sla_fired(task,
timer)``, then does what the timer does; a second clock or a retry hits the primary key and does
nothing, so every reminder and escalation happens exactly once. ``fire_due`` then moves
``sla_next_at`` to the next unfired timer (should it die first, the next tick finds the task due
again, fires nothing twice and moves it then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tempo import directory, links
from tempo.assignment import Resolved
from tempo.mail.outbox import enqueue
from tempo.mail.render import render_mail
from tempo.sla import SLA, SLA_ACTOR, Escalate, Timer, next_timer_at, timers
from tempo.store.engine import read_session, write_session
from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    Person,
    Process,
    SlaFired,
    SlaState,
    Task,
    TaskStatus,
    utcnow,
)
from tempo.store.processes import refresh_current_step
from tempo.store.tasks import TaskConflict, assign_task, close_task, complete_task, record_event

log = logging.getLogger(__name__)


def _waiting_with_sla(session: Session, task_pk: int) -> tuple[Task, SLA, datetime] | None:
    """The task with its policy and due date, if it is still in an inbox and has an SLA; else None."""
    task = session.get(Task, task_pk)
    if task is None or task.status not in ACTIVE_TASK_STATUSES or not task.sla_policy or task.due_at is None:
        return None
    return task, SLA.from_dict(task.sla_policy), task.due_at


def _fired(session: Session, task_pk: int) -> set[str]:
    return set(session.scalars(select(SlaFired.timer).where(SlaFired.task_id == task_pk)))


def pending(task_pk: int) -> list[tuple[datetime, str]]:
    """The task's timers that have not fired yet, in firing order (empty without an SLA)."""
    with read_session() as session:
        found = _waiting_with_sla(session, task_pk)
        if found is None:
            return []
        _, policy, due_at = found
        fired = _fired(session, task_pk)
        return [(t.at, t.name) for t in timers(policy, due_at) if t.name not in fired]


@dataclass
class Fired:
    """What ``fire_due`` did to one task."""

    #: Outbox keys of the messages queued, to deliver at once.
    outbox_keys: list[str] = field(default_factory=list)
    #: The task, if it is closed now (by its expiry, say): its waiting step is owed a wake.
    closed_task: Task | None = None


def fire_due(task_pk: int, now: datetime | None = None) -> Fired:
    """Fire every timer of the task due by ``now``, in order, each once; then store when the next
    one is due (nothing, once all have fired or the task is closed)."""
    now = now or utcnow()
    result = Fired()
    for at, name in pending(task_pk):
        if at > now:
            break
        result.outbox_keys += fire(task_pk, name)
    with write_session() as session:
        task = session.get(Task, task_pk)
        if task is None:
            return result
        if task.status not in ACTIVE_TASK_STATUSES:
            result.closed_task = task  # closing cleared its schedule already
            return result
        found = _waiting_with_sla(session, task_pk)
        task.sla_next_at = (
            next_timer_at(found[1], found[2], _fired(session, task_pk)) if found is not None else None
        )
    return result


def _holders(session: Session, task: Task) -> list[Person]:
    """Who the task waits on now: its holder, or their stand-in while they are away; a queue's
    present members."""
    holder = task.claimed_by or task.assignee
    return Resolved(
        assignee=holder,
        role=None if holder else task.candidate_role,
        unit=None if holder else task.candidate_unit,
        dag_id=task.dag_id,
    ).recipients(session)


def escalation_targets(session: Session, task: Task, level: Escalate) -> list[Person]:
    """Whom an escalation reaches: the people its level names, each or their stand-in while away."""
    targets = {p.username: directory.stand_in(session, p, task.dag_id) for p in _named(session, task, level)}
    return list({p.username: p for p in targets.values()}.values())


def _named(session: Session, task: Task, level: Escalate) -> list[Person]:
    """The people a level names; "manager" and the unit heads are those of the person the task is
    for (the absent one a deputy holds it for)."""
    kind, _, value = level.to.partition(":")
    if kind == "person":
        person = directory.active_person(session, value)
        return [person] if person else []
    if kind == "role":
        return directory.people_with_role(session, value)
    holder = task.acting_for or task.claimed_by or task.assignee
    if level.to == "manager" and holder:
        manager = directory.manager_of(session, holder)
        return [manager] if manager else []
    holders = Resolved(
        assignee=holder,
        role=None if holder else task.candidate_role,
        unit=None if holder else task.candidate_unit,
    ).recipients(session)
    units = (
        [task.candidate_unit]
        if task.candidate_unit
        else sorted({p.unit_code for p in holders if p.unit_code})
    )
    heads = [directory.head_of_unit(session, u) for u in units]
    return [h for h in heads if h is not None]


def _queue_mail(
    session: Session,
    task: Task,
    process: Process,
    timer: Timer,
    people: list[Person],
    template: str,
    extra: dict[str, object],
    personal_link: bool = True,
) -> list[str]:
    """One message per person; a personal action link for those who act, the task page for the rest."""
    keys = []
    for person in {p.username: p for p in people}.values():
        key = f"sla:{task.id}:{timer.name}:{person.username}"
        link = links.task_link(task.id, person.username) if personal_link else links.task_page(task.id)
        mail = render_mail(
            template,
            {"task": task, "process": process, "person": person, "action_link": link, **extra},
            session=session,
        )
        enqueue(session, dedup_key=key, to=[person.email], mail=mail, process_id=process.id, task_id=task.id)
        keys.append(key)
    return keys


def fire(task_pk: int, timer_name: str) -> list[str]:
    """Fire one timer once; return the outbox keys of the messages it queued."""
    with write_session() as session:
        found = _waiting_with_sla(session, task_pk)
        if found is None:
            return []
        task, policy, due_at = found
        timer = next((t for t in timers(policy, due_at) if t.name == timer_name), None)
        if timer is None:
            return []
        try:
            with session.begin_nested():
                session.add(SlaFired(task_id=task.id, timer=timer.name))
        except IntegrityError:
            return []  # fired already, by another clock or before a restart
        process = session.get_one(Process, task.process_id)
        late = utcnow() >= due_at
        if timer.kind == "due":
            task.sla_state = SlaState.ESCALATED if task.escalation_level else SlaState.OVERDUE
            record_event(session, process_id=process.id, task_id=task.id, kind="overdue", actor=SLA_ACTOR)
            return []
        if timer.kind == "remind":
            people = _holders(session, task)
            if task.sla_state != SlaState.ESCALATED:
                task.sla_state = SlaState.OVERDUE if late else SlaState.DUE_SOON
            record_event(
                session,
                process_id=process.id,
                task_id=task.id,
                kind="reminded",
                actor=SLA_ACTOR,
                details={"to": [p.username for p in people], "timer": timer.name},
            )
            # A deputy reminded of a task its absent holder still holds is told whose it is.
            holder = task.claimed_by or task.assignee
            absent = task.acting_for or (
                holder if holder and [p.username for p in people] != [holder] else None
            )
            extra: dict[str, object] = {
                "overdue": late,
                "acting_for": directory.get_person(session, absent) if absent else None,
            }
            return _queue_mail(session, task, process, timer, people, "sla_reminder", extra)
        if timer.kind == "escalate":
            assert timer.escalation is not None
            level = policy.escalations[timer.escalation]
            targets = escalation_targets(session, task, level)
            task.escalation_level = timer.escalation + 1
            task.sla_state = SlaState.ESCALATED
            record_event(
                session,
                process_id=process.id,
                task_id=task.id,
                kind="escalated",
                actor=SLA_ACTOR,
                details={
                    "level": timer.escalation + 1,
                    "to": [p.username for p in targets],
                    "reassigned": bool(level.reassign and len(targets) == 1),
                },
            )
            holders = _holders(session, task)
            reassigned = level.reassign and len(targets) == 1
            if reassigned:
                assign_task(session, task.id, actor=SLA_ACTOR, to=targets[0].username, kind="reassigned")
            return _queue_mail(
                session,
                task,
                process,
                timer,
                targets,
                "sla_escalation",
                {"level": timer.escalation + 1, "holders": holders},
                personal_link=reassigned,
            )
        # expire
        outcome = policy.default_outcome
        try:
            if outcome is not None:
                complete_task(session, task.id, actor=SLA_ACTOR, result={}, outcome=outcome)
            else:
                close_task(session, task.id, TaskStatus.EXPIRED, actor=SLA_ACTOR)
        except TaskConflict:
            return []  # answered at the last moment: the answer stands
        refresh_current_step(session, process.id)
        return []
