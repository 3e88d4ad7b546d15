"""The clock, ticked by hand at chosen moments: the lease, SLA timers by ``sla_next_at``, owed wakes
and the outbox sweep. The same clock runs in the API servers of the end-to-end tests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tempo.clock import LEASE_NAME, Clock
from tempo.directory import load_directory_file
from tempo.mail.outbox import enqueue
from tempo.mail.render import RenderedMail
from tempo.sla import SLA, Escalate
from tempo.store.engine import read_session, write_session
from tempo.store.models import Lease, OutboxMessage, OutboxStatus, SlaFired, Task, TaskStatus, utcnow
from tempo.store.tasks import complete_task
from tests.conftest import REPO
from tests.factories import make_task

POLICY = SLA(
    due=timedelta(minutes=10),
    remind_before=timedelta(minutes=5),
    escalations=(Escalate(after=timedelta(minutes=5)),),
    expire_after=timedelta(minutes=30),
    business_time=False,
)


@pytest.fixture
def directory(store):
    load_directory_file(REPO / "include" / "directory.yaml")


def _sla_task(session, opened, **overrides):
    return make_task(
        session,
        assignee="sandra",
        sla_policy=POLICY.to_dict(),
        due_at=opened + POLICY.due,
        **overrides,
    )


def _task(task_pk: int) -> Task:
    with read_session() as session:
        return session.get_one(Task, task_pk)


def _fired(task_pk: int) -> list[str]:
    with read_session() as session:
        return sorted(session.scalars(select(SlaFired.timer).where(SlaFired.task_id == task_pk)))


def test_one_clock_at_a_time_holds_the_lease_and_a_dead_holders_runs_out(store):
    now = utcnow()
    first, second = Clock(holder="first", interval=5), Clock(holder="second", interval=5)
    assert first.hold_lease(now) and first.hold_lease(now + timedelta(seconds=5))
    assert not second.hold_lease(now + timedelta(seconds=5))
    assert not second.tick(now + timedelta(seconds=5)).held
    # The first stops renewing (it died): once its lease runs out the second takes over, and the
    # first cannot take it back while the second renews.
    later = now + timedelta(seconds=5) + first.lease + timedelta(seconds=1)
    assert second.hold_lease(later)
    assert not first.hold_lease(later + timedelta(seconds=1))
    second.release_lease()
    assert first.hold_lease(utcnow())
    with read_session() as session:
        assert session.get_one(Lease, LEASE_NAME).holder == "first"


def test_timers_fire_when_due_each_once_and_the_schedule_moves_on(directory):
    opened = utcnow()
    with write_session() as session:
        task = _sla_task(session, opened)
    # The first timer is the reminder, five minutes before the due date.
    assert _task(task.id).sla_next_at == opened + timedelta(minutes=5)
    clock = Clock(holder="c", interval=5)

    assert clock.tick(opened + timedelta(minutes=4)).timers_fired_on == 0
    assert _fired(task.id) == []
    assert clock.tick(opened + timedelta(minutes=5, seconds=1)).timers_fired_on == 1
    assert _fired(task.id) == ["remind-before"]
    assert _task(task.id).sla_next_at == opened + timedelta(minutes=10)  # due
    # A tick long after (no clock ran for a while) fires everything due since, in order, once.
    assert clock.tick(opened + timedelta(minutes=16)).timers_fired_on == 1
    assert _fired(task.id) == ["due", "escalate-1", "remind-before"]
    assert _task(task.id).sla_next_at == opened + timedelta(minutes=40)  # expire
    # A second clock that ticks the same moment (it held the lease a moment ago) fires nothing again.
    other = Clock(holder="c", interval=5)
    other.tick(opened + timedelta(minutes=16))
    assert _fired(task.id) == ["due", "escalate-1", "remind-before"]
    with read_session() as session:
        keys = sorted(
            session.scalars(select(OutboxMessage.dedup_key).where(OutboxMessage.task_id == task.id))
        )
    assert keys == [f"sla:{task.id}:escalate-1:helen", f"sla:{task.id}:remind-before:sandra"]


def test_two_clocks_firing_at_once_without_the_lease_send_each_message_once(directory):
    """The lease keeps a second clock idle; should two fire at the same moment anyway (a lease
    taken over from a holder that was only slow), each timer still fires once."""
    import threading

    opened = utcnow()
    with write_session() as session:
        tasks = [_sla_task(session, opened, task_id=f"step-{n}") for n in range(5)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def fire(clock: Clock) -> None:
        barrier.wait()
        try:
            clock.fire_due_timers(opened + timedelta(minutes=16))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(Clock(holder=h, interval=5),)) for h in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with read_session() as session:
        keys = list(session.scalars(select(OutboxMessage.dedup_key)))
    assert len(keys) == len(set(keys)) == 2 * len(tasks)  # a reminder and an escalation each
    for task in tasks:
        assert _fired(task.id) == ["due", "escalate-1", "remind-before"]


def test_expiry_closes_the_task_and_clears_its_schedule(directory, monkeypatch):
    woken: list[int] = []
    monkeypatch.setattr("tempo.steps.resume._resume", lambda task: woken.append(task.id) or _woken())
    opened = utcnow()
    with write_session() as session:
        task = _sla_task(session, opened)
    Clock(holder="c", interval=5).tick(opened + timedelta(hours=1))
    row = _task(task.id)
    assert (row.status, row.sla_next_at) == (TaskStatus.EXPIRED, None)
    assert woken == [task.id]  # the clock wakes the step of the task it closed
    assert row.woken_at is not None


def test_a_closed_task_clears_its_schedule(directory):
    opened = utcnow()
    with write_session() as session:
        task = _sla_task(session, opened)
        complete_task(session, task.id, actor="sandra", result={})
    assert _task(task.id).sla_next_at is None
    assert Clock(holder="c", interval=5).tick(opened + timedelta(hours=1)).timers_fired_on == 0
    assert _fired(task.id) == []


def test_an_owed_wake_is_retried_until_airflow_takes_it(directory, monkeypatch):
    """A closed task without ``woken_at`` is woken by the clock; while Airflow cannot be reached,
    or the step has not parked yet, it stays owed and is tried again."""
    from tempo.steps import resume

    answers = iter([resume.Wake.FAILED, resume.Wake.NOT_PARKED_YET, resume.Wake.WOKEN])
    tried: list[int] = []

    def airflow(task):
        tried.append(task.id)
        return next(answers)

    monkeypatch.setattr("tempo.steps.resume._resume", airflow)
    with write_session() as session:
        task = make_task(session, assignee="sandra")
        complete_task(session, task.id, actor="sandra", result={})
    clock = Clock(holder="c", interval=5)
    closed_at = _task(task.id).completed_at
    assert clock.tick(closed_at).woken == 0  # within the grace the acting process has for its wake
    assert tried == []
    for n in range(3):
        clock.tick(closed_at + timedelta(seconds=10 + n))
    assert tried == [task.id] * 3
    assert _task(task.id).woken_at is not None
    clock.tick(closed_at + timedelta(seconds=20))
    assert tried == [task.id] * 3  # delivered: never again


def test_a_wake_outside_airflow_is_not_owed_forever(directory, airflow_metadata):
    """No Airflow run has this step: the wake is not needed, and the task is no longer owed one."""
    from tempo.steps.resume import Wake, wake_step

    with write_session() as session:
        task = make_task(session, assignee="sandra")
        done = complete_task(session, task.id, actor="sandra", result={})
    assert wake_step(done) is Wake.NOT_NEEDED
    assert _task(task.id).woken_at is not None


def _queue(dedup_key: str, subject: str) -> None:
    with write_session() as session:
        enqueue(session, dedup_key=dedup_key, to=["rob@example.com"], mail=RenderedMail(subject, "Hi", ""))


def test_the_outbox_is_swept_with_no_step_waiting(store, smtp):
    clock = Clock(holder="c", interval=5)
    _queue("k1", "Hello")
    assert clock.sweep_outbox() == 0  # not the lease holder: nothing
    assert clock.tick().held
    assert clock.sweep_outbox() == 1
    assert [m.subject for m in smtp.messages] == ["Hello"]
    with read_session() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {OutboxStatus.SENT}


def test_retries_go_out_as_soon_as_smtp_answers_again(store, smtp):
    """A message that failed during an outage waits for its back-off; once SMTP answers again the
    next sweep sends it, once, however long the back-off still had to run."""
    from tempo.mail.outbox import deliver_pending
    from tempo_dev.mailcatcher import restarted

    smtp.controller.stop()
    _queue("k1", "During the outage")
    for _ in range(4):  # four failed attempts: the next one is 40 s away
        with write_session() as session:
            session.execute(
                OutboxMessage.__table__.update().values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        assert deliver_pending().retrying == 1
    clock = Clock(holder="c", interval=5)
    clock.tick()
    assert clock.sweep_outbox() == 0  # SMTP still down: it stays waiting
    smtp.controller = restarted(smtp.controller)
    assert clock.sweep_outbox() == 1
    assert clock.sweep_outbox() == 0
    assert [m.subject for m in smtp.messages] == ["During the outage"]


def _woken():
    from tempo.steps.resume import Wake

    return Wake.WOKEN
