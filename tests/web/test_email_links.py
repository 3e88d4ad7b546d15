"""The emailed link: signed, bound to task, person and purpose, expiring, useless once the task is
closed, never acting on GET."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer

from tempo import links
from tempo.store.engine import write_session
from tests.factories import make_process, make_task
from tests.web.test_routes import SO_FORM, snapshot


def sales_order_task(**fields):
    """Rob's RMA process with its "Create a sales order" task; ``fields`` say whose it is."""
    with write_session() as session:
        process = make_process(session, dag_id="rma_sales_order", template="rma_sales_order", requester="rob")
        return make_task(
            session,
            process,
            dag_id="rma_sales_order",
            task_id="create_sales_order",
            title="Create a sales order",
            form_schema=SO_FORM,
            **fields,
        )


@pytest.fixture
def task(web):
    return sales_order_task(candidate_role="customer_service")


def path_of(url: str) -> str:
    return url.removeprefix("http://tempo.example.test")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_link_is_built_from_the_configured_base_url():
    assert links.task_link(7, "sandra").startswith("http://tempo.example.test/tempo/act/")


def test_get_shows_the_form_and_changes_nothing(web, task):
    url = path_of(links.task_link(task.id, "sandra"))
    before = snapshot(task.id)
    for _ in range(3):  # a mail scanner, a link preview, then Sandra
        page = web.get(url)
        assert page.status_code == 200
        assert 'name="so_number"' in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
    assert snapshot(task.id) == before


def test_the_link_page_shows_a_fields_format_before_any_error(web, task):
    page = web.get(path_of(links.task_link(task.id, "sandra"))).text
    assert 'id="format-so_number">Use SO-123456.<' in page
    assert 'pattern="SO-\\d{6}"' in page and 'placeholder="SO-123456"' in page


def test_post_with_csrf_completes_as_the_links_person_once(web, task):
    url = path_of(links.task_link(task.id, "sandra"))
    token = csrf_of(web.get(url).text)
    before = snapshot(task.id)

    invalid = web.post(url, data={"csrf": token, "so_number": "SO-1"})
    assert invalid.status_code == 422 and "Use SO-123456." in invalid.text
    assert snapshot(task.id) == before
    assert web.post(url, data={"so_number": "SO-123456"}).status_code == 403  # no CSRF token
    assert snapshot(task.id) == before

    done = web.post(url, data={"csrf": token, "so_number": "SO-123456"}, follow_redirects=False)
    assert done.status_code == 303
    confirmation = web.get(done.headers["location"])
    assert (
        confirmation.status_code == 200
        and "Thank you" in confirmation.text
        and "SO-123456" in confirmation.text
    )
    status, _, result, *_ = snapshot(task.id)
    assert status.value == "completed" and result == {"so_number": "SO-123456"}

    # Replayed after completion: refused, nothing changes.
    after = snapshot(task.id)
    replay = web.post(url, data={"csrf": token, "so_number": "SO-999999"})
    assert replay.status_code == 409
    assert "already completed by sandra" in web.get(url).text
    assert snapshot(task.id) == after


def _tampered(token: str) -> str:
    head, sep, tail = token.rpartition(".")
    return head + sep + ("A" if tail[0] != "A" else "B") + tail[1:]


@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        (lambda task: _tampered(links.sign(task.id, "sandra")), 404),
        (
            lambda task: URLSafeTimedSerializer("another-key", salt="tempo.task-link.v1").dumps(
                {"t": task.id, "u": "sandra", "p": "act"}
            ),
            404,
        ),
        (lambda task: links.sign(task.id + 1000, "sandra"), 404),
        (
            lambda task: URLSafeTimedSerializer(
                "test-secret-key-not-for-production", salt="tempo.task-link.v1"
            ).dumps({"t": task.id, "u": "sandra", "p": "view"}),
            404,
        ),
        (lambda task: links.sign(task.id, "john"), 403),
        (lambda task: "not-a-token", 404),
    ],
    ids=["tampered", "foreign-key", "other-task", "other-purpose", "other-person", "garbage"],
)
def test_bad_links_are_refused_and_change_nothing(web, task, make_token, status):
    token = make_token(task)
    before = snapshot(task.id)
    assert web.get(f"/tempo/act/{token}").status_code == status
    assert web.post(f"/tempo/act/{token}", data={"csrf": "x", "so_number": "SO-123456"}).status_code == status
    assert snapshot(task.id) == before


def test_expired_link_is_refused(web, task):
    with time_machine.travel("2026-01-01 09:00:00+00:00", tick=False):
        token = links.sign(task.id, "sandra")
    with time_machine.travel("2026-01-08 09:00:01+00:00", tick=False):  # 7 days and a second later
        before = snapshot(task.id)
        assert web.get(f"/tempo/act/{token}").status_code == 410
        assert (
            web.post(f"/tempo/act/{token}", data={"csrf": "x", "so_number": "SO-123456"}).status_code == 410
        )
        assert snapshot(task.id) == before


def test_rotated_key_still_verifies_old_links(monkeypatch, web, task):
    old = links.sign(task.id, "sandra")
    monkeypatch.setenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", "test-secret-key-not-for-production")
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", "a-brand-new-key")
    # Retired keys verify only tokens signed before the switch (tests/web/test_security.py).
    switch = datetime.now(UTC) + timedelta(seconds=1)
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", switch.isoformat())
    assert web.get(f"/tempo/act/{old}").status_code == 200
    monkeypatch.delenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS")
    assert web.get(f"/tempo/act/{old}").status_code == 404


def test_a_destructive_outcome_through_the_link_needs_its_reason_and_a_confirmation(web):
    from tests.web.test_routes import CANCELLABLE_FORM

    with write_session() as session:
        task = make_task(
            session, form_schema=CANCELLABLE_FORM, outcomes=["take", "cancel"], assignee="sandra"
        )
    url = path_of(links.task_link(task.id, "sandra"))
    token = csrf_of(web.get(url).text)
    before = snapshot(task.id)
    blank = web.post(url, data={"csrf": token, "outcome": "cancel", "note": ""})
    assert blank.status_code == 422 and 'id="error-note"' in blank.text
    asked = web.post(url, data={"csrf": token, "outcome": "cancel", "note": "Sent twice."})
    assert asked.status_code == 200 and 'id="confirm-cancel"' in asked.text
    assert snapshot(task.id) == before
    done = web.post(
        url,
        data={"csrf": token, "outcome": "cancel", "note": "Sent twice.", "confirm": "cancel"},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_a_damaged_form_says_so_on_the_link_page_as_on_the_task_page(web, task):
    """A form-level problem (here a version field broken on its way) is shown above the answer on
    the emailed-link page, as on the task page: both pages draw one answer form."""
    from tests.web.conftest import auth

    damaged = "The form was damaged on its way"
    url = path_of(links.task_link(task.id, "sandra"))
    token = csrf_of(web.get(url).text)
    before = snapshot(task.id)
    refused = web.post(url, data={"csrf": token, "version": "x1", "so_number": "SO-123456"})
    assert refused.status_code == 422
    assert 'id="form-problem"' in refused.text and damaged in refused.text
    assert snapshot(task.id) == before

    page = web.get(f"/tempo/tasks/{task.id}", headers=auth("sandra"))
    on_page = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": csrf_of(page.text), "version": "x1", "so_number": "SO-123456"},
        headers=auth("sandra"),
    )
    assert on_page.status_code == 422
    assert 'id="form-problem"' in on_page.text and damaged in on_page.text
    assert snapshot(task.id) == before
