from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tempo import sla_timers
from tempo.directory import load_directory_file
from tempo.sla import SLA, Escalate
from tempo.store.engine import read_session, write_session
from tempo.store.models import HistoryEvent, OutboxMessage, SlaState, Task, TaskStatus, utcnow
from tests.conftest import REPO
from tests.factories import make_process, make_task

POLICY = SLA(
    due=timedelta(seconds=20),
    remind_before=timedelta(seconds=10),
    repeat_every=timedelta(seconds=30),
    max_reminders=1,
    escalations=(
        Escalate(after=timedelta(seconds=10)),
        Escalate(after=timedelta(seconds=40), to="role:financial_manager", reassign=True),
    ),
    expire_after=timedelta(minutes=5),
    business_time=False,
)


@pytest.fixture
def sla_task(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    with write_session() as session:
        process = make_process(session, requester="rob")
        return make_task(
            session,
            process,
            assignee="sandra",
            sla_policy=POLICY.to_dict(),
            due_at=utcnow() + timedelta(seconds=20),
        )


def outbox_to(task_id: int) -> list[tuple[str, str]]:
    with read_session() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.task_id == task_id).order_by(OutboxMessage.id)
        )
        return [(r.to_addrs[0], r.subject) for r in rows]


def test_pending_lists_every_timer_until_fired(sla_task):
    names = [name for _, name in sla_timers.pending(sla_task.id)]
    assert names == ["remind-before", "due", "escalate-1", "remind-overdue-1", "escalate-2", "expire"]
    sla_timers.fire(sla_task.id, "remind-before")
    assert "remind-before" not in [name for _, name in sla_timers.pending(sla_task.id)]


def test_each_timer_fires_once_with_its_effects(sla_task):
    assert sla_timers.fire(sla_task.id, "remind-before") == [f"sla:{sla_task.id}:remind-before:sandra"]
    assert sla_timers.fire(sla_task.id, "remind-before") == []  # again: nothing
    sla_timers.fire(sla_task.id, "due")
    escalation_keys = sla_timers.fire(sla_task.id, "escalate-1")
    assert escalation_keys == [f"sla:{sla_task.id}:escalate-1:helen"]  # Sandra's manager

    assert outbox_to(sla_task.id) == [
        ("sandra@example.com", "[Tempo] Reminder: Do the thing"),
        ("helen@example.com", "[Tempo] Escalated: Do the thing"),
    ]
    with read_session() as session:
        task = session.get_one(Task, sla_task.id)
        kinds = session.scalars(
            select(HistoryEvent.kind).where(HistoryEvent.task_id == task.id).order_by(HistoryEvent.id)
        ).all()
    assert (task.sla_state, task.escalation_level, task.version) == (SlaState.ESCALATED, 1, sla_task.version)
    assert kinds == ["created", "reminded", "overdue", "escalated"]


def test_escalation_with_reassign_hands_the_task_over(sla_task):
    sla_timers.fire(sla_task.id, "escalate-2")
    with read_session() as session:
        task = session.get_one(Task, sla_task.id)
    assert (task.assignee, task.status, task.escalation_level) == ("fiona", TaskStatus.OPEN, 2)
    assert outbox_to(sla_task.id) == [("fiona@example.com", "[Tempo] Escalated: Do the thing")]


def test_two_triggers_firing_the_same_timer_at_once_send_one_message(sla_task):
    barrier = threading.Barrier(2)
    results: list[list[str]] = []

    def fire() -> None:
        barrier.wait()
        results.append(sla_timers.fire(sla_task.id, "remind-before"))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(outbox_to(sla_task.id)) == 1


def test_expiry_fails_or_takes_the_default_outcome(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    with write_session() as session:
        process = make_process(session)
        failing = make_task(
            session,
            process,
            task_id="a",
            assignee="sandra",
            due_at=utcnow(),
            sla_policy=SLA(
                due=timedelta(seconds=1), expire_after=timedelta(seconds=1), business_time=False
            ).to_dict(),
        )
        defaulting = make_task(
            session,
            process,
            task_id="b",
            assignee="sandra",
            due_at=utcnow(),
            outcomes=["ok", "no"],
            sla_policy=SLA(
                due=timedelta(seconds=1),
                expire_after=timedelta(seconds=1),
                on_expiry="outcome:no",
                business_time=False,
            ).to_dict(),
        )
    sla_timers.fire(failing.id, "expire")
    sla_timers.fire(defaulting.id, "expire")
    with read_session() as session:
        a, b = session.get_one(Task, failing.id), session.get_one(Task, defaulting.id)
    assert a.status == TaskStatus.EXPIRED
    assert (b.status, b.outcome, b.completed_by) == (TaskStatus.COMPLETED, "no", "tempo-sla")


def test_closed_tasks_fire_nothing(sla_task):
    from tempo.store.tasks import complete_task

    with write_session() as session:
        complete_task(session, sla_task.id, actor="sandra", result={"answer": "x"})
    assert sla_timers.pending(sla_task.id) == []
    assert sla_timers.fire(sla_task.id, "remind-before") == []
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_reopened_task_gets_its_timers_back(sla_task):
    from tempo.store.tasks import TaskSpec, cancel_active_tasks, open_task

    sla_timers.fire(sla_task.id, "remind-before")
    with write_session() as session:
        cancel_active_tasks(session, sla_task.dag_id, sla_task.run_id, reason="cleared")
        open_task(
            session,
            TaskSpec(
                process_id=sla_task.process_id,
                dag_id=sla_task.dag_id,
                run_id=sla_task.run_id,
                task_id=sla_task.task_id,
                map_index=-1,
                title="again",
                assignee="sandra",
                sla_policy=POLICY.to_dict(),
                due_at=utcnow() + timedelta(seconds=20),
            ),
        )
    assert "remind-before" in [name for _, name in sla_timers.pending(sla_task.id)]
