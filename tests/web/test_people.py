"""Who a login or a link is in the directory: mapped by username, an address only when the auth
manager keeps it and one person holds it; deactivated people and ownerless tasks act for nobody."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tempo import links
from tempo.directory import DirectoryError, load_directory_file
from tempo.store.engine import write_session
from tempo.store.models import Person
from tests.web.conftest import auth
from tests.web.test_email_links import csrf_of, path_of, sales_order_task
from tests.web.test_routes import snapshot

ANSWER = {"answers": {"so_number": "SO-123456"}}


def bearer(username: str) -> dict[str, str]:
    """A login not in the demo's users: any name Airflow's auth manager could hand out."""
    return auth(username, role="user")


def sandras_task(**overrides):
    return sales_order_task(**({"assignee": "sandra"} | overrides))


def deactivate(username: str) -> None:
    with write_session() as session:
        session.execute(update(Person).where(Person.username == username).values(active=False))


def test_a_login_named_after_someones_email_is_not_that_person(web):
    task = sandras_task()
    before = snapshot(task.id)
    for name in ("sandra@example.com", "SANDRA@EXAMPLE.COM", " sandra@example.com"):
        response = web.post(f"/tempo/api/v1/tasks/{task.id}/complete", json=ANSWER, headers=bearer(name))
        assert response.status_code == 403, (name, response.text)
    assert snapshot(task.id) == before
    assert web.post(
        f"/tempo/api/v1/tasks/{task.id}/complete", json=ANSWER, headers=bearer("sandra")
    ).status_code in (200, 201)


def test_people_sharing_an_email_are_refused_when_loaded(tmp_path, web):
    directory = tmp_path / "directory.yaml"
    directory.write_text(
        "people:\n"
        "  - {username: ann, name: Ann, email: shared@example.com}\n"
        "  - {username: bob, name: Bob, email: Shared@Example.com}\n"
    )
    with pytest.raises(DirectoryError) as info:
        load_directory_file(directory)
    assert "duplicate email 'shared@example.com'" in str(info.value)
    with write_session() as session:
        assert session.get(Person, "ann") is None and session.get(Person, "bob") is None


def test_a_deactivated_person_acts_neither_logged_in_nor_by_link(web):
    task = sandras_task()
    url = path_of(links.task_link(task.id, "sandra"))
    csrf = csrf_of(web.get(url).text)
    deactivate("sandra")
    before = snapshot(task.id)

    api = web.post(f"/tempo/api/v1/tasks/{task.id}/complete", json=ANSWER, headers=bearer("sandra"))
    assert api.status_code == 403
    assert web.get(url).status_code == 403
    by_link = web.post(url, data={"csrf": csrf, "so_number": "SO-123456"}, follow_redirects=False)
    assert by_link.status_code == 403
    assert snapshot(task.id) == before


def test_a_deactivated_manager_manages_nothing(web):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from tempo.store.engine import read_session
    from tempo.store.models import Task
    from tempo.web.policy import may_manage, person_of

    task = sandras_task()
    helen = SimpleAuthManagerUser(username="helen", role="user")  # Sandra's manager
    with read_session() as session:
        row, person = session.get_one(Task, task.id), session.get_one(Person, "helen")
        assert may_manage(session, helen, person_of(session, helen), row)
    deactivate("helen")
    with read_session() as session:
        row, person = session.get_one(Task, task.id), session.get_one(Person, "helen")
        assert person_of(session, helen) is None
        assert not may_manage(session, helen, person, row)


def test_a_task_with_no_assignee_and_no_queue_belongs_to_nobody(web):
    task = sandras_task(assignee=None, candidate_role=None, candidate_unit=None)
    before = snapshot(task.id)
    for name in ("sandra", "rob", "stranger"):
        response = web.post(f"/tempo/api/v1/tasks/{task.id}/complete", json=ANSWER, headers=bearer(name))
        assert response.status_code == 403, (name, response.text)
    assert snapshot(task.id) == before


def test_the_done_page_of_a_task_that_is_gone_says_so(web):
    task = sandras_task()
    for task_pk in (task.id + 1000, 0):  # a purged store's task, and one that never was
        page = web.get(path_of(links.task_link(task_pk, "sandra")) + "/done")
        assert page.status_code == 404
        assert "no longer exists" in page.text
