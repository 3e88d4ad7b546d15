"""People deactivated in the directory (``active: false``) are never assigned, notified or escalated
to: an explicit assignment to one is a clear error, a manager or head who is deactivated gives way
to the next active one up the unit chain, and a counterparty's card goes to an active specialist."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tempo import actions, sla_timers
from tempo.assignment import (
    AssignmentError,
    CounterpartyResponsible,
    HeadOfUnit,
    Person,
    RequesterManager,
    Resolved,
    Role,
)
from tempo.counterparties import find_or_create
from tempo.directory import load_directory_file
from tempo.forms import FormErrors
from tempo.sla import SLA, Escalate
from tempo.store.engine import read_session, write_session
from tempo.store.models import Counterparty, Task, utcnow
from tempo.store.models import Person as PersonRow
from tests.conftest import REPO
from tests.factories import make_process, make_task
from tests.test_sla_timers import outbox_to


@pytest.fixture
def directory(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    return store


def deactivate(*usernames: str) -> None:
    with write_session() as session:
        session.execute(update(PersonRow).where(PersonRow.username.in_(usernames)).values(active=False))


def resolve(assignment, **process) -> Resolved:
    with write_session() as session:
        return assignment.resolve(session, make_process(session, **process))


def test_a_deactivated_person_is_not_assigned(directory):
    deactivate("sandra")
    with pytest.raises(AssignmentError, match="'sandra' is deactivated"):
        resolve(Person("sandra"))
    # Sandra was the only customer service agent: her role's queue has nobody left.
    with pytest.raises(AssignmentError, match="nobody holds role 'customer_service'"):
        resolve(Role("customer_service"))
    # Nor does a task already hers mail her.
    with read_session() as session:
        assert Resolved(assignee="sandra").recipients(session) == []


def test_a_deactivated_manager_or_head_gives_way_to_the_next_active_one_up(directory):
    deactivate("helen")  # Sandra's manager, head of customer service; Olga heads the company
    assert resolve(RequesterManager(), requester="sandra").assignee == "olga"
    assert resolve(HeadOfUnit(Person("sandra"))).assignee == "olga"


def test_a_counterparty_whose_specialist_is_deactivated(directory):
    deactivate("sandra")  # responsible for GLOBEX
    with pytest.raises(AssignmentError, match="nobody active is responsible for counterparty 'GLOBEX'"):
        resolve(CounterpartyResponsible(), counterparty_code="GLOBEX")
    # A request from the card hands it to an active holder of the specialist role.
    with write_session() as session:
        card, created = find_or_create(
            session, name="Globex", email="buyers@globex.example", specialist_role="technical_specialist"
        )
        assert not created and card.responsible_username == "rob"
    with read_session() as session:
        assert session.get_one(Counterparty, "GLOBEX").responsible_username == "rob"


def test_nobody_reassigns_to_a_deactivated_person(directory):
    deactivate("john")
    with write_session() as session:
        task = make_task(session, make_process(session), assignee="sandra")
    with pytest.raises(FormErrors) as refused:
        actions.assign(task.id, actor="helen", to="john", kind="reassigned")
    assert "deactivated" in refused.value.errors["to"]
    with read_session() as session:
        assert session.get_one(Task, task.id).assignee == "sandra"


def test_an_escalation_skips_a_deactivated_manager_and_person(directory):
    policy = SLA(
        due=timedelta(seconds=20),
        escalations=(
            Escalate(after=timedelta(seconds=10)),
            Escalate(after=timedelta(seconds=40), to="person:fiona", reassign=True),
        ),
        business_time=False,
    )
    deactivate("helen", "fiona")
    with write_session() as session:
        task = make_task(
            session,
            make_process(session, requester="rob"),
            assignee="sandra",
            sla_policy=policy.to_dict(),
            due_at=utcnow() + timedelta(seconds=20),
        )
    assert sla_timers.fire(task.id, "escalate-1") == [f"sla:{task.id}:escalate-1:olga"]
    assert sla_timers.fire(task.id, "escalate-2") == []
    assert outbox_to(task.id) == [("olga@example.com", "[Tempo] Escalated: Do the thing")]
    with read_session() as session:
        assert session.get_one(Task, task.id).assignee == "sandra"  # not handed to Fiona


def test_a_missed_deadline_of_a_deactivated_owner_goes_to_their_manager(directory):
    from tempo.deadlines import record_miss
    from tempo.store.models import ProcessStatus

    deactivate("sandra", "helen")  # the owner and the requester's manager: Olga, above both
    with write_session() as session:
        process = make_process(session, requester="sandra")
        process.status = ProcessStatus.RUNNING
    keys = record_miss(process.dag_id, process.run_id, "sandra")
    assert keys == [f"deadline:{process.id}:olga"]
