"""What people do to tasks, the same wherever they act: web page, JSON API, emailed link, CLI.

Each action validates its input first (bad input changes nothing), then changes the task with one
compare-and-set, so of concurrent or repeated submissions exactly one applies and the others get
``TaskConflict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tempo import directory, required_actions
from tempo.absences import ABSENCE_ACTOR, AbsenceSpec, in_scope, problems
from tempo.attachments import Upload, stage, too_big, write_content
from tempo.directory import get_person
from tempo.forms import (
    UNSAFE_CHARACTERS_MESSAGE,
    Form,
    FormErrors,
    destructive_outcomes,
    has_unsafe_characters,
)
from tempo.store.engine import write_session
from tempo.store.models import ACTIVE_TASK_STATUSES, Absence, Attachment, HistoryEvent, Person, Task, utcnow
from tempo.store.processes import refresh_current_step
from tempo.store.tasks import (
    TaskConflict,
    assign_task,
    claim_task,
    complete_task,
    get_task,
    record_event,
    unclaim_task,
)


@dataclass(frozen=True)
class Completed:
    task: Task
    woke_step: bool


def complete(
    task_pk: int,
    *,
    actor: str,
    answers: dict[str, Any],
    outcome: str | None = None,
    expected_version: int | None = None,
    wake: bool = True,
    uploads: Mapping[str, Sequence[Upload]] | None = None,
) -> Completed:
    """Validate ``answers`` against the task's own form and record them as ``actor``'s.

    ``uploads`` are files sent with the answer, by ``File`` field: they become the task's
    attachments and the field's answer, in the same transaction as the completion, so a refused or
    lost answer leaves no file behind.

    Raises ``FormErrors`` (see ``check_answers``), ``TaskNotFound`` or ``TaskConflict``. With
    ``wake``, the waiting step is resumed at once when Airflow is reachable.
    """
    with write_session() as session:
        task = get_task(session, task_pk)
        staged = {
            name: [stage(session, task.process_id, task.id, actor=actor, upload=u) for u in files]
            for name, files in (uploads or {}).items()
            if files
        }
        answers = {**answers, **{name: [a.id for a in files] for name, files in staged.items()}}
        result = check_answers(session, task, answers, outcome)
        # Someone who answers a task its holder holds is that absent holder's stand-in.
        holder = task.claimed_by or task.assignee
        done = complete_task(
            session,
            task.id,
            actor=actor,
            result=result,
            outcome=outcome,
            expected_version=expected_version,
            acting_for=task.acting_for or (holder if holder not in (None, actor) else None),
        )
        for name, files in staged.items():
            for attachment, upload in zip(files, (uploads or {})[name], strict=True):
                write_content(attachment, upload)
        refresh_current_step(session, done.process_id)
    woke = False
    if wake:
        from tempo.steps.resume import Wake, wake_step

        woke = wake_step(done) is Wake.WOKEN
    return Completed(task=done, woke_step=woke)


def check_answers(
    session: Session, task: Task, answers: dict[str, Any], outcome: str | None
) -> dict[str, Any]:
    """The cleaned answers, if ``complete`` would take them; else ``FormErrors``: field -> message;
    ``"outcome"`` for a bad outcome; the reason field of a destructive outcome left blank;
    ``"required_action"`` while the step's required action is not done; a ``File`` field naming
    another process's file or one above its ``max_bytes``."""
    problems: dict[str, str] = {}
    form = Form.from_schema(task.form_schema)
    try:
        result = form.validate(answers)
    except FormErrors as exc:
        problems.update(exc.errors)
        result = {}
    for name, spec in form.file_fields().items():
        problem = _file_problem(session, task, result.get(name), spec.max_bytes)
        if problem is not None:
            problems[name] = problem
    if task.outcomes and outcome not in task.outcomes:
        problems["outcome"] = f"Choose one of: {', '.join(task.outcomes)}."
    elif not task.outcomes and outcome is not None:
        problems["outcome"] = "This task has no outcomes to choose from."
    reason = destructive_outcomes(task.form_schema).get(outcome or "")
    if reason is not None and reason not in problems and result.get(reason) in (None, ""):
        problems[reason] = f"Say why: “{outcome_label(outcome or '')}” needs a reason."
    missing = required_actions.check(session, task)
    if missing is not None:
        problems["required_action"] = missing
    if problems:
        raise FormErrors(problems)
    return result


def outcome_label(outcome: str) -> str:
    """An outcome as its button says it: "send_back" is "Send back"."""
    return outcome.replace("_", " ").capitalize()


def _file_problem(
    session: Session, task: Task, attachment_ids: list[int] | None, max_bytes: int
) -> str | None:
    """What is wrong with the files a ``File`` field names: an attachment that is not of the task's
    process (someone else's file), or one bigger than the field takes. None when nothing is."""
    if not attachment_ids:
        return None
    sizes = dict(
        session.execute(
            select(Attachment.id, Attachment.size).where(
                Attachment.id.in_(attachment_ids), Attachment.process_id == task.process_id
            )
        )
        .tuples()
        .all()
    )
    if set(sizes) != set(attachment_ids):
        return "Attach the file to this task first."
    if any(size > max_bytes for size in sizes.values()):
        return too_big(max_bytes)
    return None


def claim(task_pk: int, *, actor: str, expected_version: int | None = None) -> Task:
    """Take a queued task: it becomes the actor's alone until completed or unclaimed."""
    with write_session() as session:
        return claim_task(session, task_pk, actor=actor, expected_version=expected_version)


def unclaim(task_pk: int, *, actor: str, expected_version: int | None = None) -> Task:
    """Put a claimed task back into its queue."""
    with write_session() as session:
        return unclaim_task(session, task_pk, actor=actor, expected_version=expected_version)


def assign(task_pk: int, *, actor: str, to: str, kind: str, expected_version: int | None = None) -> Task:
    """Give the task to person ``to`` (``kind``: "delegated" by its holder, "reassigned" by a manager)."""
    with write_session() as session:
        handover_person(session, to)
        return assign_task(session, task_pk, actor=actor, to=to, kind=kind, expected_version=expected_version)


def handover_person(session: Session, to: str) -> Person:
    """The person named ``to``, to whom a task may be handed; ``FormErrors`` when nobody is."""
    person = None if has_unsafe_characters(to) or len(to) > 250 else get_person(session, to)
    if person is None:
        raise FormErrors({"to": f"{to!r} is not in the directory."})
    if not person.active:
        raise FormErrors({"to": f"{to!r} is deactivated: choose someone active."})
    return person


def comment(task_pk: int, *, actor: str, text: str) -> HistoryEvent:
    """Add a comment to the task's history (allowed while the task is open or after)."""
    if has_unsafe_characters(text):
        raise FormErrors({"text": UNSAFE_CHARACTERS_MESSAGE})
    text = text.strip()
    if not text:
        raise FormErrors({"text": "Write a comment first."})
    if len(text) > 5000:
        raise FormErrors({"text": "Keep comments under 5,000 characters."})
    with write_session() as session:
        task = get_task(session, task_pk)
        return record_event(
            session,
            process_id=task.process_id,
            task_id=task.id,
            kind="comment",
            actor=actor,
            details={"text": text},
        )


def email_client(task_pk: int, *, actor: str, subject: str, text: str) -> HistoryEvent:
    """Email the task's client (the step's required action); see ``tempo.required_actions``."""
    return required_actions.email_client(task_pk, actor=actor, subject=subject, text=text)


def record_absence(spec: AbsenceSpec, *, by: str) -> Absence:
    """Record an absence (whoever may, ``web.policy``, decided already): its people active, its
    last day not over, and ``absences.problems`` kept beside those recorded; ``FormErrors`` by field
    otherwise, and nothing recorded."""
    with write_session() as session:
        found: dict[str, str] = {}
        for key, username in (("person", spec.person), ("deputy", spec.deputy)):
            if directory.active_person(session, username) is None:
                found[key] = f"{username!r} is not an active person of the directory."
        if found:
            raise FormErrors(found)
        found = problems(spec, directory.recorded_absences(session))
        absence = directory.store_absence(session, spec, recorded_by=by)
        if absence.ends_at <= utcnow():
            found.setdefault("last_day", "This absence is over already.")
        if found:
            raise FormErrors(found)  # the transaction is rolled back: nothing recorded
        session.flush()
        return absence


def hand_over_absences(now: datetime | None = None) -> int:
    """The hand-overs absences with ``move_tasks`` owe at ``now``: at its start the person's open
    tasks (of its scope) go to their stand-in, and at its end those nobody touched meanwhile come
    back. Each move is a history event; the number of tasks moved."""
    now = now or utcnow()
    moved = 0
    with write_session() as session:
        starting = session.scalars(
            select(Absence).where(
                Absence.move_tasks.is_(True),
                Absence.moved_at.is_(None),
                Absence.starts_at <= now,
                Absence.ends_at > now,
            )
        ).all()
        for absence in starting:
            moved += _move_to_stand_in(session, absence, now)
            absence.moved_at = now
        ending = session.scalars(
            select(Absence).where(
                Absence.moved_at.is_not(None), Absence.returned_at.is_(None), Absence.ends_at <= now
            )
        ).all()
        for absence in ending:
            moved += _move_back(session, absence)
            absence.returned_at = now
    return moved


def _absent_tasks(session: Session, absence: Absence, *held: Any) -> list[Task]:
    tasks = session.scalars(select(Task).where(Task.status.in_(ACTIVE_TASK_STATUSES), *held)).all()
    return [t for t in tasks if in_scope(absence.scope, t.dag_id)]


def _move_to_stand_in(session: Session, absence: Absence, now: datetime) -> int:
    person = session.get_one(Person, absence.username)
    held = or_(
        Task.claimed_by == person.username, (Task.assignee == person.username) & Task.claimed_by.is_(None)
    )
    moved = 0
    for task in _absent_tasks(session, absence, held):
        deputy = directory.stand_in(session, person, task.dag_id, now)
        if deputy.username != person.username and _hand_over(
            session, task, to=deputy.username, kind="handed_over", acting_for=person.username
        ):
            moved += 1
    return moved


def _move_back(session: Session, absence: Absence) -> int:
    """The tasks handed over for the absence that nobody touched since: no event after the hand-over."""
    moved = 0
    for task in _absent_tasks(session, absence, Task.acting_for == absence.username):
        last = session.scalars(
            select(HistoryEvent.kind)
            .where(HistoryEvent.task_id == task.id)
            .order_by(HistoryEvent.at.desc(), HistoryEvent.id.desc())
            .limit(1)
        ).first()
        if last == "handed_over" and _hand_over(session, task, to=absence.username, kind="handed_back"):
            moved += 1
    return moved


def _hand_over(session: Session, task: Task, *, to: str, kind: str, acting_for: str | None = None) -> bool:
    """One move, unless the task changed under it (someone acted that very moment: theirs stands)."""
    try:
        with session.begin_nested():
            assign_task(
                session,
                task.id,
                actor=ABSENCE_ACTOR,
                to=to,
                kind=kind,
                expected_version=task.version,
                acting_for=acting_for,
            )
    except TaskConflict:
        return False
    return True
