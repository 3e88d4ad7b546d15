from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tempo import (
    Checkbox,
    CounterpartyResponsible,
    Decide,
    Form,
    HumanStep,
    NotifyStep,
    Person,
    Requester,
    RequesterManager,
    Role,
    Text,
    Unit,
    process,
)
from tempo.assignment import AssignmentError
from tempo.directory import load_directory_file
from tempo.runs import is_process, process_title, template_info
from tempo.store.engine import read_session, write_session
from tests.conftest import REPO
from tests.factories import make_process


def test_process_carries_its_template_in_params_that_airflow_serializes():
    from airflow.serialization.serialized_objects import DagSerialization

    with process(
        "p_demo",
        title="Demo process",
        description="What it is for",
        owner="support",
        business_key="ref",
        start_form=Form(ref=Text(label="Reference", pattern=r"R-\d+"), urgent=Checkbox()),
    ) as dag:
        HumanStep(task_id="s", title="t", assign_to="sandra")
    assert dag.schedule is None and "tempo" in dag.tags

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for candidate in (dag, serialized):
        info = template_info(candidate)
        assert is_process(candidate)
        assert (info.title, info.description, info.business_key) == ("Demo process", "What it is for", "ref")
        assert list(info.start_form.fields) == ["ref", "urgent"]
        assert info.start_form.validate({"ref": "R-1"}) == {"ref": "R-1", "urgent": False}
    assert process_title(info, {"ref": "R-9"}) == "Demo process R-9"


def test_business_key_must_be_a_start_field():
    with pytest.raises(ValueError, match="business_key"):
        process("p_bad", title="x", business_key="nope", start_form=Form(ref=Text()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcomes": ["Approve"]}, "lower_snake_case"),
        ({"outcomes": ["ok", "ok"]}, "unique"),
        ({"outcomes": ["ok"], "branches": {"no": "x"}}, "unknown outcomes"),
        ({"outcomes": ["ok", "no"], "branches": {"ok": "x"}}, "every outcome"),
        (
            {"outcomes": ["ok"], "destructive_outcomes": {"no": "why"}, "form": Form(why=Text())},
            "not an outcome",
        ),
        ({"outcomes": ["ok", "no"], "destructive_outcomes": {"no": "why"}}, "not a form field"),
    ],
    ids=["case", "duplicate", "unknown-branch", "missing-branch", "unknown-destructive", "unknown-reason"],
)
def test_human_step_rejects_bad_declarations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HumanStep(task_id="s", title="t", assign_to="sandra", **kwargs)


def test_a_destructive_outcome_is_stored_with_the_task_form():
    step = HumanStep(
        task_id="s",
        title="t",
        assign_to="sandra",
        form=Form(why=Text(required=False)),
        outcomes=["ok", "no"],
        destructive_outcomes={"no": "why"},
    )
    assert step.task_form_schema()["destructive_outcomes"] == {"no": "why"}
    assert "destructive_outcomes" not in HumanStep(task_id="t", title="t", assign_to="x").task_form_schema()


def test_human_step_is_declarative_and_retries_by_default():
    step = HumanStep(task_id="s", title="{{ params.x }}", assign_to=Role("customer_service"))
    assert step.retries >= 1
    assert "title" in step.template_fields and "instructions" in step.template_fields
    assert step.assign_to == Role("customer_service")


def test_a_mapped_human_step_keeps_the_retry_defaults():
    """The scheduler decides on a mapped step's retry from ``partial()``'s arguments, not ``__init__``."""
    from airflow.sdk import DAG

    with DAG("mapped_retries", schedule=None):
        single = HumanStep(task_id="single", title="t", assign_to="sandra")
        mapped = HumanStep.partial(task_id="mapped", assign_to="sandra").expand(title=["a", "b"])
    for step in (single, mapped):
        assert (step.retries, step.retry_exponential_backoff) == (6, 2.0)
        assert step.retry_delay == timedelta(seconds=1)


def test_notify_step_needs_a_recipient():
    with pytest.raises(ValueError, match="at least one recipient"):
        NotifyStep(task_id="n", to=[], template="x")


@pytest.fixture
def directory(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    return store


@pytest.mark.parametrize(
    ("assignment", "expected", "recipients"),
    [
        (Person("sandra"), ("sandra", None, None), ["sandra"]),
        (Role("customer_service"), (None, "customer_service", None), ["sandra"]),
        (Unit("repair"), (None, None, "repair"), ["john", "victor"]),
        (Requester(), ("rob", None, None), ["rob"]),
        (RequesterManager(), ("mike", None, None), ["mike"]),
        (CounterpartyResponsible(), ("sandra", None, None), ["sandra"]),
        (Decide(lambda context, process: "john"), ("john", None, None), ["john"]),
        (
            Decide(lambda context, process: Role("repair_technician")),
            (None, "repair_technician", None),
            ["john"],
        ),
    ],
    ids=[
        "person",
        "role",
        "unit",
        "requester",
        "requester-manager",
        "counterparty",
        "callable",
        "callable-role",
    ],
)
def test_assignments_resolve_against_the_directory(directory, assignment, expected, recipients):
    with write_session() as session:
        proc = make_process(session, requester="rob", counterparty_code="GLOBEX")
        resolved = assignment.resolve(session, proc, None)
        assert (resolved.assignee, resolved.role, resolved.unit) == expected
        assert sorted(p.username for p in resolved.recipients(session)) == recipients


@pytest.mark.parametrize(
    "assignment",
    [Person("nobody"), Role("astronaut"), Unit("moonbase"), RequesterManager(), CounterpartyResponsible()],
    ids=["person", "role", "unit", "no-requester", "no-counterparty"],
)
def test_unresolvable_assignments_say_why(directory, assignment):
    with write_session() as session:
        proc = make_process(session)
        with pytest.raises(AssignmentError):
            assignment.resolve(session, proc, None)


def test_execute_creates_one_task_and_returns_a_stored_answer_without_parking(directory, monkeypatch):
    """A retry (or a second run of execute) never duplicates the task; a completed one is returned."""
    from airflow.sdk.exceptions import TaskAwaitingInput

    from tempo.store.models import Task
    from tempo.store.tasks import complete_task

    monkeypatch.setattr("tempo.steps.opening.deliver_now", lambda keys: None)
    step = HumanStep(task_id="ask", title="Answer me", assign_to="sandra", form=Form(answer=Text()))
    context = _context("r1")

    with pytest.raises(TaskAwaitingInput) as parked:
        step.execute(context)
    with pytest.raises(TaskAwaitingInput):
        step.execute(context)
    # Parked like Airflow's own HITL operators: resumed in execute_complete, timed out by the
    # scheduler after the step's timeout (a year by default).
    assert parked.value.method_name == "execute_complete"
    assert parked.value.timeout == timedelta(days=365)
    with read_session() as session:
        (task_pk,) = session.scalars(select(Task.id)).all()
    with write_session() as session:
        complete_task(session, task_pk, actor="sandra", result={"answer": "42"})

    answer = step.execute(context)
    assert (
        answer["form"] == {"answer": "42"}
        and answer["completed_by"] == "sandra"
        and answer["task"] == task_pk
    )
    # A wake without the answer falls back to the store; one with it does not.
    assert step.execute_complete(context, {"status": "closed", "task_pk": task_pk}) == answer
    assert step.execute_complete(context, {"status": "closed", "task_pk": 0, "answer": answer}) == answer
    # The scheduler's timeout event carries no task: the step finds its own, and an answer that
    # arrived just before the timeout stands.
    assert step.execute_complete(context, {"error": "timed out", "error_type": "timeout"}) == answer


def _context(run_id: str) -> dict:
    dag_run = SimpleNamespace(dag_id="d", run_id=run_id, conf={"requester": "rob"}, triggering_user_name=None)
    ti = SimpleNamespace(dag_id="d", run_id=run_id, task_id="ask", map_index=-1)
    return {"ti": ti, "dag_run": dag_run, "dag": None}


def test_a_timeout_with_nobody_answering_fails_the_step_without_retry(directory, monkeypatch):
    from airflow.sdk.exceptions import AirflowSensorTimeout, TaskAwaitingInput

    from tempo.steps.human import StepTimedOut

    monkeypatch.setattr("tempo.steps.opening.deliver_now", lambda keys: None)
    step = HumanStep(task_id="ask", title="Answer me", assign_to="sandra", timeout=60)
    context = _context("r-timeout")
    with pytest.raises(TaskAwaitingInput) as parked:
        step.execute(context)
    assert parked.value.timeout == timedelta(seconds=60)
    with pytest.raises(StepTimedOut) as timed_out:
        step.execute_complete(context, {"error": "timed out", "error_type": "timeout"})
    assert isinstance(timed_out.value, AirflowSensorTimeout)  # Airflow does not retry it


def test_a_step_deferred_by_an_older_tempo_parks_again_or_finishes(directory, monkeypatch):
    """The retired trigger fires at once; the step then waits the new way, or takes the answer."""
    import asyncio

    from airflow.sdk.exceptions import TaskAwaitingInput

    from tempo.steps.trigger import HumanStepTrigger
    from tempo.store.models import Task
    from tempo.store.tasks import complete_task

    monkeypatch.setattr("tempo.steps.opening.deliver_now", lambda keys: None)
    step = HumanStep(task_id="ask", title="Answer me", assign_to="sandra")
    context = _context("r-legacy")
    with pytest.raises(TaskAwaitingInput):
        step.execute(context)
    with read_session() as session:
        (task_pk,) = session.scalars(select(Task.id).where(Task.run_id == "r-legacy")).all()
    # The kwargs an older Tempo stored with its trigger rows.
    trigger = HumanStepTrigger(task_pk=task_pk, poll_interval=None, has_sla=True)
    event = asyncio.run(trigger.run().__anext__())

    with pytest.raises(TaskAwaitingInput):
        step.execute_complete(context, event.payload)
    with write_session() as session:
        complete_task(session, task_pk, actor="sandra", result={})
    assert step.execute_complete(context, event.payload)["completed_by"] == "sandra"


def test_a_partial_clear_keeps_the_tasks_of_steps_still_awaiting_input():
    """When a run starts again after a partial clear, only the tasks of steps that are no longer
    waiting or about to run are cancelled: a step parked in ``awaiting_input`` keeps its task."""
    from tempo.listeners import _live_task_ids

    dag_run = SimpleNamespace(
        run_id="r",
        task_instances=[
            SimpleNamespace(task_id="parked", state="awaiting_input"),
            SimpleNamespace(task_id="deferred_by_an_older_tempo", state="deferred"),
            SimpleNamespace(task_id="cleared", state=None),
            SimpleNamespace(task_id="finished", state="success"),
        ],
    )
    assert _live_task_ids(dag_run) == ["parked", "deferred_by_an_older_tempo"]
