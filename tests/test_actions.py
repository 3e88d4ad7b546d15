from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tempo.actions import claim, complete
from tempo.attachments import add_attachment
from tempo.forms import File, Form, FormErrors
from tempo.store.engine import read_session, write_session
from tempo.store.models import HistoryEvent, Task, TaskStatus
from tempo.store.tasks import TaskConflict, TaskNotFound
from tests.factories import make_task

SCHEMA = {"fields": [{"name": "so_number", "type": "text", "pattern": r"SO-\d{6}", "required": True}]}


def _snapshot(task_id: int) -> tuple:
    with read_session() as session:
        task = session.get_one(Task, task_id)
        events = session.scalar(
            select(func.count()).select_from(HistoryEvent).where(HistoryEvent.task_id == task_id)
        )
        return task.status, task.version, task.result, task.outcome, events


@pytest.fixture
def task(store):
    with write_session() as session:
        return make_task(session, form_schema=SCHEMA, outcomes=["done", "not_needed"])


@pytest.mark.parametrize(
    ("answers", "outcome", "errors"),
    [
        ({"so_number": "SO-1"}, "done", {"so_number"}),
        ({"so_number": "SO-123456"}, "maybe", {"outcome"}),
        ({"so_number": "SO-123456"}, None, {"outcome"}),
        ({}, "done", {"so_number"}),
        ({"so_number": "SO-123456", "extra": "x"}, "done", {"extra"}),
        ({"so_number": "bad"}, "bad", {"so_number", "outcome"}),
    ],
    ids=["bad-pattern", "unknown-outcome", "missing-outcome", "missing-field", "unknown-field", "both"],
)
def test_invalid_answers_change_nothing(task, answers, outcome, errors):
    before = _snapshot(task.id)
    with pytest.raises(FormErrors) as info:
        complete(task.id, actor="sandra", answers=answers, outcome=outcome, wake=False)
    assert set(info.value.errors) == errors
    assert _snapshot(task.id) == before


def test_complete_then_conflict(task):
    done = complete(task.id, actor="sandra", answers={"so_number": "SO-123456"}, outcome="done", wake=False)
    assert done.task.status == TaskStatus.COMPLETED
    assert done.task.result == {"so_number": "SO-123456"}
    after = _snapshot(task.id)
    with pytest.raises(TaskConflict):
        complete(task.id, actor="helen", answers={"so_number": "SO-654321"}, outcome="done", wake=False)
    assert _snapshot(task.id) == after


def test_wake_outside_airflow_is_harmless(task):
    """No deferred task instance anywhere: the completion stands, the shortcut reports False."""
    done = complete(task.id, actor="sandra", answers={"so_number": "SO-123456"}, outcome="done")
    assert done.woke_step is False
    assert _snapshot(task.id)[0] == TaskStatus.COMPLETED


def test_claim_is_compare_and_set(task):
    claim(task.id, actor="sandra", expected_version=task.version)
    with pytest.raises(TaskConflict):
        claim(task.id, actor="helen", expected_version=task.version)


def test_unknown_task(store):
    with pytest.raises(TaskNotFound):
        complete(12345, actor="sandra", answers={}, wake=False)


@pytest.fixture
def drawing_task(store, tmp_path, monkeypatch):
    """A task whose form takes one drawing of at most 10 bytes."""
    monkeypatch.setenv("AIRFLOW__TEMPO__ATTACHMENTS_PATH", f"file://{tmp_path}")
    schema = Form(drawing=File(max_bytes=10)).schema()
    with write_session() as session:
        return make_task(session, form_schema=schema)


def _attach(task, data: bytes) -> int:
    return add_attachment(task.id, actor="sandra", filename="d.pdf", content_type="", data=data).id


def test_a_file_field_refuses_a_file_bigger_than_its_max_bytes(drawing_task):
    too_big = _attach(drawing_task, b"x" * 11)
    before = _snapshot(drawing_task.id)
    with pytest.raises(FormErrors) as info:
        complete(drawing_task.id, actor="sandra", answers={"drawing": [too_big]}, wake=False)
    assert info.value.errors == {"drawing": "Files may be at most 10 bytes."}
    assert _snapshot(drawing_task.id) == before

    fits = _attach(drawing_task, b"x" * 10)
    done = complete(drawing_task.id, actor="sandra", answers={"drawing": [fits]}, wake=False)
    assert done.task.result == {"drawing": [fits]}
