"""Absences and deputies: when an absence is on (in the person's time zone), who stands in down a
chain, what is refused when recorded (circles, overlaps), scopes, and what the assignment, the SLA
timers, completions and the clock's hand-overs do with it. Time is frozen: nothing waits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from sqlalchemy import select

from tempo import actions, directory, sla_timers
from tempo.absences import AbsenceSpec
from tempo.assignment import Resolved, Role
from tempo.directory import DirectoryError, load_directory_file
from tempo.forms import Form, FormErrors, Text
from tempo.sla import SLA, Escalate
from tempo.steps.human import HumanStep
from tempo.store.engine import read_session, write_session
from tempo.store.models import Absence, HistoryEvent, OutboxMessage, Person, Task
from tests.conftest import REPO
from tests.factories import make_process, make_task

#: Before Sandra's week away; she works in Amsterdam (UTC+1 in December).
MONDAY_BEFORE = datetime(2026, 11, 30, 9, tzinfo=UTC)
AWAY = datetime(2026, 12, 9, 10, tzinfo=UTC)
BACK = datetime(2026, 12, 12, 9, tzinfo=UTC)


def week(person: str = "sandra", deputy: str = "fiona", **overrides) -> AbsenceSpec:
    fields = {"first_day": date(2026, 12, 7), "last_day": date(2026, 12, 11), **overrides}
    return AbsenceSpec(person=person, deputy=deputy, **fields)


@pytest.fixture
def people(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    with time_machine.travel(MONDAY_BEFORE, tick=False) as traveller:
        yield traveller


def stand_in(username: str, dag_id: str = "demo", at: datetime | None = None) -> str:
    with read_session() as session:
        return directory.stand_in(session, session.get_one(Person, username), dag_id, at).username


def test_an_absence_covers_the_persons_days_in_their_time_zone(people):
    recorded = actions.record_absence(week(), by="helen")

    # Amsterdam's midnights: 23:00 UTC the evening before.
    assert (recorded.starts_at, recorded.ends_at) == (
        datetime(2026, 12, 6, 23, tzinfo=UTC),
        datetime(2026, 12, 11, 23, tzinfo=UTC),
    )
    assert stand_in("sandra") == "sandra"
    assert stand_in("sandra", at=datetime(2026, 12, 6, 22, 59, tzinfo=UTC)) == "sandra"
    assert stand_in("sandra", at=datetime(2026, 12, 6, 23, tzinfo=UTC)) == "fiona"
    assert stand_in("sandra", at=AWAY) == "fiona"
    assert stand_in("sandra", at=datetime(2026, 12, 11, 23, tzinfo=UTC)) == "sandra"


def test_a_chain_of_deputies_is_followed(people):
    actions.record_absence(week(), by="sandra")
    actions.record_absence(week("fiona", "olga", first_day=date(2026, 12, 9)), by="fiona")

    assert stand_in("sandra", at=datetime(2026, 12, 8, 10, tzinfo=UTC)) == "fiona"
    assert stand_in("sandra", at=AWAY) == "olga"


@pytest.mark.parametrize(
    "chain",
    [[("fiona", "sandra")], [("fiona", "olga"), ("olga", "sandra")]],
    ids=["two", "three"],
)
def test_a_circle_of_deputies_is_refused_when_recorded(people, chain):
    actions.record_absence(week(), by="sandra")
    for person, deputy in chain[:-1]:
        actions.record_absence(week(person, deputy), by=person)
    person, deputy = chain[-1]

    with pytest.raises(FormErrors) as refused:
        actions.record_absence(week(person, deputy), by=person)

    assert set(refused.value.errors) == {"deputy"}
    assert "circle" in refused.value.errors["deputy"]
    with read_session() as session:
        assert (
            session.scalar(select(Absence).where(Absence.username == person, Absence.deputy == deputy))
            is None
        )
    # Other days make no circle.
    actions.record_absence(
        week(person, deputy, first_day=date(2026, 12, 14), last_day=date(2026, 12, 18)), by=person
    )


def test_a_circle_met_at_resolution_time_ends_before_it_closes(people):
    """Rows that make a circle (recorded around the check, say) do not send the lookup round forever."""
    for person, deputy in (("sandra", "fiona"), ("fiona", "sandra")):
        with write_session() as session:
            directory.store_absence(session, week(person, deputy), recorded_by=None)

    assert stand_in("sandra", at=AWAY) == "fiona"
    assert stand_in("fiona", at=AWAY) == "sandra"


def test_what_an_absence_refuses_by_field(people):
    actions.record_absence(week(), by="sandra")
    cases = [
        (week(first_day=date(2026, 12, 10), last_day=date(2026, 12, 14)), "first_day"),
        (week(deputy="sandra"), "deputy"),
        (week(deputy="nobody"), "deputy"),
        (week("helen", first_day=date(2026, 12, 10), last_day=date(2026, 12, 9)), "last_day"),
        (week("helen", first_day=date(2026, 11, 2), last_day=date(2026, 11, 6)), "last_day"),
    ]
    for spec, field in cases:
        with pytest.raises(FormErrors) as refused:
            actions.record_absence(spec, by="admin")
        assert set(refused.value.errors) == {field}, spec
    with read_session() as session:
        assert len(session.scalars(select(Absence)).all()) == 1


def test_an_absence_covers_only_the_processes_of_its_scope(people):
    actions.record_absence(week(scope=("rma_sales_order",)), by="sandra")

    assert stand_in("sandra", "rma_sales_order", AWAY) == "fiona"
    assert stand_in("sandra", "deal_approval", AWAY) == "sandra"


def test_a_task_for_someone_away_goes_to_the_deputy_marked_for_them(people, monkeypatch):
    from airflow.sdk.exceptions import TaskAwaitingInput

    monkeypatch.setattr("tempo.steps.opening.deliver_now", lambda keys: None)
    actions.record_absence(week(), by="sandra")
    people.move_to(AWAY)
    step = HumanStep(task_id="ask", title="Check the order", assign_to="sandra", form=Form(answer=Text()))
    dag_run = SimpleNamespace(dag_id="d", run_id="r1", conf={"requester": "rob"}, triggering_user_name=None)
    ti = SimpleNamespace(dag_id="d", run_id="r1", task_id="ask", map_index=-1)

    with pytest.raises(TaskAwaitingInput):
        step.execute({"ti": ti, "dag_run": dag_run, "dag": None})

    with read_session() as session:
        task = session.scalars(select(Task)).one()
        mail = session.scalars(select(OutboxMessage)).one()
    assert (task.assignee, task.acting_for) == ("fiona", "sandra")
    assert mail.to_addrs == ["fiona@example.com"]
    assert mail.subject == "[Tempo] To do for Sandra Service: Check the order"
    assert "for Sandra Service" in mail.body_text and "for Sandra Service" in (mail.body_html or "")


def test_a_queue_notifies_its_present_members_and_goes_to_a_deputy_when_nobody_is(people):
    actions.record_absence(week(), by="sandra")
    with read_session() as session:
        queue = Resolved(unit="customer_service", dag_id="demo")
        role = Role("customer_service").resolve(session, None, None)  # type: ignore[arg-type]
        before = sorted(p.username for p in queue.recipients(session))
        role_before = role.standing_in(session, "demo")
    people.move_to(AWAY)
    with read_session() as session:
        during = sorted(p.username for p in queue.recipients(session))
        unit_during = queue.standing_in(session, "demo")
        role_during = role.standing_in(session, "demo")
        role_recipients = [p.username for p in role_during.recipients(session)]

    assert before == ["helen", "sandra"]
    assert during == ["helen"]
    assert unit_during.assignee is None  # Helen is there: the queue stays a queue
    assert (role_before.role, role_before.assignee) == ("customer_service", None)
    # Sandra alone holds the role: the task goes to her deputy, held for her.
    assert (role_during.role, role_during.assignee, role_during.acting_for) == (None, "fiona", "sandra")
    assert role_recipients == ["fiona"]


SLA_POLICY = SLA(
    due=timedelta(hours=2),
    remind_before=timedelta(hours=1),
    escalations=(Escalate(after=timedelta(minutes=10)),),
    business_time=False,
)


def test_reminders_go_to_the_deputy_and_escalations_to_the_absent_managers_deputy(people):
    people.move_to(AWAY)
    with write_session() as session:
        task = make_task(
            session, assignee="sandra", sla_policy=SLA_POLICY.to_dict(), due_at=AWAY + timedelta(hours=2)
        )
    actions.record_absence(week(first_day=date(2026, 12, 9)), by="sandra")
    actions.record_absence(week("helen", "olga", first_day=date(2026, 12, 9)), by="helen")

    assert sla_timers.fire(task.id, "remind-before") == [f"sla:{task.id}:remind-before:fiona"]
    assert sla_timers.fire(task.id, "escalate-1") == [f"sla:{task.id}:escalate-1:olga"]
    with read_session() as session:
        reminder = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedup_key.like("%remind%"))
        ).one()
    assert "For: Sandra Service" in reminder.body_text


def test_the_deputy_acts_on_the_absent_persons_task_and_the_history_says_for_whom(people):
    people.move_to(AWAY)
    with write_session() as session:
        task = make_task(session, assignee="sandra")
    actions.record_absence(week(first_day=date(2026, 12, 9)), by="sandra")

    actions.complete(task.id, actor="fiona", answers={"answer": "done"}, wake=False)

    with read_session() as session:
        event = session.scalars(select(HistoryEvent).where(HistoryEvent.kind == "completed")).one()
    assert (event.actor, event.details) == ("fiona", {"for": "sandra"})


def test_open_tasks_move_to_the_deputy_and_the_untouched_ones_come_back(people):
    with write_session() as session:
        untouched = make_task(session, assignee="sandra")
        touched = make_task(session, assignee="sandra")
        other_process = make_task(session, make_process(session, dag_id="deal_approval"), assignee="sandra")
    actions.record_absence(week(scope=("demo",), move_tasks=True), by="helen")

    assert actions.hand_over_absences() == 0  # not yet begun
    people.move_to(AWAY)
    assert actions.hand_over_absences() == 2
    assert actions.hand_over_absences() == 0  # once
    actions.comment(touched.id, actor="fiona", text="On it.")
    people.move_to(BACK)
    assert actions.hand_over_absences() == 1

    with read_session() as session:
        holders = {t.id: (t.assignee, t.acting_for) for t in session.scalars(select(Task))}
        kinds = session.scalars(
            select(HistoryEvent.kind).where(HistoryEvent.task_id == untouched.id).order_by(HistoryEvent.id)
        ).all()
        handed = session.scalars(select(HistoryEvent).where(HistoryEvent.kind == "handed_over")).first()
    assert holders == {
        untouched.id: ("sandra", None),
        touched.id: ("fiona", "sandra"),
        other_process.id: ("sandra", None),
    }
    assert kinds == ["created", "handed_over", "handed_back"]
    assert handed is not None and handed.details == {"to": "fiona", "for": "sandra"}


def test_the_directory_file_records_absences_and_says_what_is_wrong_where(people, tmp_path):
    good = tmp_path / "absences.yaml"
    good.write_text(
        "absences:\n"
        "  - {person: sandra, first_day: 2026-12-07, last_day: 2026-12-11, deputy: fiona, move_tasks: true}\n"
        "  - {person: helen, first_day: 2026-12-07, last_day: 2026-12-11, deputy: olga,\n"
        "     scope: [rma_sales_order]}\n"
    )
    assert load_directory_file(good).absences == 2
    load_directory_file(good)  # again: the same absences, not two more
    with read_session() as session:
        assert len(session.scalars(select(Absence)).all()) == 2
    assert stand_in("helen", "rma_sales_order", AWAY) == "olga"

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "absences:\n"
        "  - {person: fiona, first_day: 2026-12-07, last_day: 2026-12-11, deputy: sandra}\n"
        "  - {person: nobody, first_day: 2026-12-07, last_day: 2026-12-11, deputy: olga}\n"
        "  - {person: olga, first_day: 2026-12-07, last_day: 2026-12-01, deputy: mike}\n"
    )
    with pytest.raises(DirectoryError) as refused:
        load_directory_file(bad)
    problems = refused.value.problems
    assert any(p.startswith(f"{bad}:2: absences.0.deputy: ") and "circle" in p for p in problems), problems
    assert f"{bad}:3: absences.1.person: unknown person 'nobody'" in problems
    assert f"{bad}:4: absences.2.last_day: The last day comes before the first day." in problems
    bad.write_text(
        "absences:\n"
        "  - {person: olga, first_day: 2026-12-07, last_day: 2026-12-08, deputy: mike, scope: ['no way']}\n"
    )
    with pytest.raises(DirectoryError, match=r"bad.yaml:2: absences.0: scope: 'no way' is not a dag_id"):
        load_directory_file(bad)
