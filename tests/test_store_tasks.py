from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session, write_session
from tempo.store.models import HistoryEvent, Task, TaskStatus
from tempo.store.tasks import (
    TaskConflict,
    TaskSpec,
    cancel_active_tasks,
    claim_task,
    complete_task,
    open_task,
)
from tests.factories import make_process, make_task


def test_two_updates_from_the_same_version_one_wins(store):
    with write_session() as session:
        task = make_task(session)
    version = task.version

    with write_session() as session:
        complete_task(session, task.id, actor="sandra", result={"answer": "a"}, expected_version=version)
    with pytest.raises(TaskConflict, match="already completed by sandra"), write_session() as session:
        complete_task(session, task.id, actor="helen", result={"answer": "b"}, expected_version=version)

    with read_session() as session:
        stored = session.get_one(Task, task.id)
        assert (stored.status, stored.completed_by, stored.result) == (
            TaskStatus.COMPLETED,
            "sandra",
            {"answer": "a"},
        )
        assert stored.version == version + 1
        kinds = session.scalars(select(HistoryEvent.kind).where(HistoryEvent.task_id == task.id)).all()
        assert kinds.count("completed") == 1


def test_stale_version_conflicts_even_while_task_is_open(store):
    with write_session() as session:
        task = make_task(session)
    with write_session() as session:
        claim_task(session, task.id, actor="sandra", expected_version=task.version)
    with pytest.raises(TaskConflict, match="changed by someone else"), write_session() as session:
        complete_task(session, task.id, actor="helen", result={}, expected_version=task.version)
    with read_session() as session:
        assert session.get_one(Task, task.id).status == TaskStatus.CLAIMED


def test_concurrent_completions_exactly_one_wins(store):
    with write_session() as session:
        task = make_task(session)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            with write_session() as session:
                complete_task(
                    session, task.id, actor=f"user{n}", result={"answer": str(n)}, expected_version=1
                )
            outcomes.append("won")
        except TaskConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    with read_session() as session:
        events = session.scalar(
            select(func.count()).where(HistoryEvent.task_id == task.id, HistoryEvent.kind == "completed")
        )
        assert events == 1


def test_open_task_is_idempotent_and_reopens_cancelled(store):
    with write_session() as session:
        process = make_process(session)
        spec = TaskSpec(
            process_id=process.id,
            dag_id=process.dag_id,
            run_id=process.run_id,
            task_id="step",
            map_index=-1,
            title="First",
        )
        first, created = open_task(session, spec)
        again, created_again = open_task(session, spec)
    assert created and not created_again and again.id == first.id

    with write_session() as session:
        cancelled = cancel_active_tasks(session, process.dag_id, process.run_id, reason="run cleared")
    assert [t.id for t in cancelled] == [first.id]

    with write_session() as session:
        reopened, changed = open_task(session, spec)
    assert changed and reopened.id == first.id and reopened.status == TaskStatus.OPEN
    assert reopened.version == first.version + 2  # cancelled, then reopened

    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 1


def test_completed_task_is_not_reopened(store):
    with write_session() as session:
        task = make_task(session)
    with write_session() as session:
        complete_task(session, task.id, actor="sandra", result={"answer": "x"})
    with write_session() as session:
        spec = TaskSpec(
            process_id=task.process_id,
            dag_id=task.dag_id,
            run_id=task.run_id,
            task_id=task.task_id,
            map_index=-1,
            title="again",
        )
        again, changed = open_task(session, spec)
    assert not changed and again.status == TaskStatus.COMPLETED and again.result == {"answer": "x"}


def test_cancel_keeps_tasks_of_live_steps(store):
    with write_session() as session:
        process = make_process(session)
        waiting = make_task(session, process, task_id="waiting")
        stale = make_task(session, process, task_id="stale")
    with write_session() as session:
        cancelled = cancel_active_tasks(
            session, process.dag_id, process.run_id, reason="x", keep_task_ids=["waiting"]
        )
    assert [t.id for t in cancelled] == [stale.id]
    with read_session() as session:
        assert session.get_one(Task, waiting.id).status == TaskStatus.OPEN


def _write_then_fail() -> None:
    with write_session() as session:
        make_task(session)
        raise RuntimeError("boom")


def test_failed_write_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        _write_then_fail()
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0
