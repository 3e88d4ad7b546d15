"""Counterparty cards: found by email or created once, even when first requests race; one request
is the first; the counterparty and the head of a unit as assignees."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from tempo import links
from tempo.assignment import AssignmentError, CounterpartyContact, CounterpartyResponsible, HeadOfUnit
from tempo.counterparties import find_by_email, find_or_create, identify_counterparty, mark_first_request
from tempo.directory import load_directory_file
from tempo.store.engine import get_engine, read_session, write_session
from tempo.store.models import Counterparty
from tests.conftest import REPO
from tests.factories import make_process


@pytest.fixture
def directory(store):
    load_directory_file(REPO / "include" / "directory.yaml")
    return store


def card_count() -> int:
    with read_session() as session:
        return session.scalar(select(func.count()).select_from(Counterparty))


def test_a_new_address_gets_a_card_and_a_known_one_finds_it(directory):
    before = card_count()
    with write_session() as session:
        card, created = find_or_create(
            session, name="Initech GmbH", email="Help@Initech.example", specialist_role="customer_service"
        )
        code = card.code
    assert created and code.startswith("INITECH-GMBH-")
    assert card.responsible_username == "sandra"  # the only customer service agent
    with write_session() as session:
        again, created = find_or_create(session, name="Initech", email=" help@initech.EXAMPLE ")
    assert not created and again.code == code
    assert card_count() == before + 1
    # Cards loaded from the directory are found by their address too.
    with read_session() as session:
        assert find_by_email(session, "ORDERS@acme.example").code == "ACME"


def test_a_new_card_goes_to_the_least_busy_specialist(directory):
    # Sam holds sales_manager and is responsible for ACME; Helen gets the role and has no cards.
    with write_session() as session:
        session.execute(text("INSERT INTO tempo_role (code, name) VALUES ('account', 'Account manager')"))
        session.execute(
            text(
                "INSERT INTO tempo_person_role (username, role_code) "
                "VALUES ('sam', 'account'), ('helen', 'account')"
            )
        )
    with write_session() as session:
        first, _ = find_or_create(session, name="One", email="one@example.net", specialist_role="account")
    with write_session() as session:
        second, _ = find_or_create(session, name="Two", email="two@example.net", specialist_role="account")
    assert (first.responsible_username, second.responsible_username) == ("helen", "helen")
    with write_session() as session:
        third, _ = find_or_create(session, name="Three", email="three@example.net", specialist_role="account")
    assert third.responsible_username == "sam"  # 1 card against Helen's 2


def _race(worker, n: int) -> list:
    barrier = threading.Barrier(n)
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(worker())
        except Exception as exc:  # reported below: the race must not raise
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results


def test_concurrent_first_requests_from_one_address_make_one_card(directory):
    def first_request() -> tuple[str, bool]:
        with write_session() as session:
            card, created = find_or_create(
                session, name="Racing Ltd", email="race@racing.example", specialist_role="customer_service"
            )
            return card.code, created

    results = _race(first_request, 8)
    assert len({code for code, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    with read_session() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Counterparty)
                .where(Counterparty.email_key == "race@racing.example")
            )
            == 1
        )


def test_exactly_one_request_is_the_first(directory):
    def first() -> bool:
        with write_session() as session:
            return mark_first_request(session, "GLOBEX")

    assert sorted(_race(first, 6)) == [False] * 5 + [True]
    with write_session() as session:
        assert mark_first_request(session, "GLOBEX") is False


def test_identify_makes_the_card_the_process_counterparty(directory, monkeypatch):
    with write_session() as session:
        process = make_process(session, dag_id="customer_request", template="customer_request")
    dag_run = SimpleNamespace(
        dag_id="customer_request", run_id=process.run_id, conf={}, triggering_user_name=None
    )
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"dag_run": dag_run, "dag": None})

    who = identify_counterparty(
        name="Umbrella plc", email="desk@umbrella.example", specialist_role="customer_service"
    )
    assert who.created and who.first_time and who.responsible == "sandra"
    again = identify_counterparty(name="Umbrella plc", email="desk@umbrella.example")  # a retry of the task
    assert (again.code, again.created, again.first_time) == (who.code, False, True)
    with read_session() as session:
        stored = session.get(type(process), process.id)
        assert stored.counterparty_code == who.code
        assert (
            stored.data["first_time"] is True and stored.data["counterparty_email"] == "desk@umbrella.example"
        )
        assert links.verify_request_status(stored.data["status_link"].rsplit("/", 1)[1]) == process.id

    with write_session() as session:
        later = make_process(session, dag_id="customer_request", template="customer_request")
    dag_run.run_id = later.run_id
    assert identify_counterparty(name="Umbrella", email="DESK@umbrella.example").first_time is False


def test_the_counterparty_and_the_head_of_a_unit_as_assignees(directory):
    with write_session() as session:
        globex = make_process(session, counterparty_code="GLOBEX")
        acme = make_process(session, counterparty_code="ACME")
        nobody = make_process(session)
        contact = CounterpartyContact().resolve(session, globex)
        assert contact.assignee == "counterparty:GLOBEX"
        [recipient] = contact.recipients(session)
        assert (recipient.email, recipient.name) == ("buyers@globex.example", "Globex Ltd")
        assert "/tempo/respond/" in recipient.action_link(7)
        # Sandra's unit is headed by Helen; Sam heads Sales himself, so the head above him (Olga).
        assert HeadOfUnit(CounterpartyResponsible()).resolve(session, globex).assignee == "helen"
        assert HeadOfUnit(CounterpartyResponsible()).resolve(session, acme).assignee == "olga"
        with pytest.raises(AssignmentError, match="no counterparty"):
            CounterpartyContact().resolve(session, nobody)


def test_migration_gives_each_address_to_its_first_card(store_url):
    from tempo.store.migrate import upgrade

    upgrade(store_url, "0003")
    with get_engine(store_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tempo_counterparty (code, name, email, created_at) VALUES "
                "('A1', 'A', 'Same@x.example', '2026-01-01 00:00:00'), "
                "('B2', 'B', 'same@X.example', '2026-01-01 00:00:00'), "
                "('C3', 'C', NULL, '2026-01-01 00:00:00')"
            )
        )
    upgrade(store_url)
    with get_engine(store_url).connect() as connection:
        rows = dict(connection.execute(text("SELECT code, email_key FROM tempo_counterparty")).all())
    assert rows == {"A1": "same@x.example", "B2": None, "C3": None}


@pytest.mark.parametrize(
    "email", ["help@initech.example\r\nBcc: victim@example.com", "a@b.example, c@d.example"]
)
def test_an_address_mail_cannot_go_to_gets_no_card(directory, email):
    # A run's conf is anybody's to write (Airflow's trigger API): the card refuses what it cannot mail.
    before = card_count()
    with write_session() as session, pytest.raises(ValueError, match="is not an email address"):
        find_or_create(session, name="Initech GmbH", email=email)
    assert card_count() == before
