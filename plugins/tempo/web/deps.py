"""What routes depend on: the store session, the task a path names and who may act on it, the
claims of a signed link and the task they name.

A dependency raises instead of answering: ``HTTPException``, ``TaskConflict`` for a task already
closed, ``LinkRefused`` for a link that cannot be used. ``web/app.py`` turns each into a page or JSON
once, so a route's signature says what it needs and its body does only its own work.

Dependencies and routes read through one session per request (``SessionDep``); ``tempo.actions``
writes in transactions of their own. So a request holds one connection at a time, the dependency
that names who acts ends with ``done_reading``: with a read connection still held, fifty people
answering at once could take every pooled connection and wait for each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from tempo import links
from tempo.store.engine import read_session
from tempo.store.models import ACTIVE_TASK_STATUSES, MAX_ID, Person, Process, Task
from tempo.store.tasks import TaskConflict, TaskNotFound, get_task
from tempo.web.common import form_data, load_task
from tempo.web.security import (
    CurrentUser,
    check_csrf,
    may_act,
    person_of,
    require,
    require_act,
    require_read,
    user_name,
)


def get_session() -> Iterator[Session]:
    with read_session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def done_reading(session: Session) -> None:
    """End the request's read transaction and hand its connection back before an action writes in
    a transaction of its own; whatever the route reads afterwards (a page shown again) is read
    afresh. The session stays usable, and what it loaded stays readable."""
    session.close()


# --- the task a path names ---------------------------------------------------------------------------

#: Tempo's own id of a task (its primary key) in a path, where it is called ``task_id``.
TaskPk = Annotated[
    int, PathParam(alias="task_id", ge=1, le=MAX_ID, description="Tempo's id of the task (`id` in its JSON).")
]


def path_task(session: SessionDep, task_pk: TaskPk) -> Task:
    """The task the path names; 404 when there is none."""
    return load_task(session, task_pk)


TaskDep = Annotated[Task, Depends(path_task)]


def readable_task(task: TaskDep, user: CurrentUser) -> Task:
    """The task, when Airflow lets ``user`` read the DAG's human tasks; 403 otherwise."""
    require_read(user, task.dag_id)
    return task


ReadableTaskDep = Annotated[Task, Depends(readable_task)]


def open_task(task: TaskDep) -> Task:
    """The task while it is still open or claimed; a closed one is a ``TaskConflict`` (409)."""
    if task.status not in ACTIVE_TASK_STATUSES:
        raise TaskConflict(task.id, f"This task is already {task.status.value}.")
    return task


#: Declared before ``ActorDep``: a closed task is a 409 even for someone it was never meant for.
OpenTaskDep = Annotated[Task, Depends(open_task)]


def task_actor(task: TaskDep, session: SessionDep, user: CurrentUser) -> Person:
    """The person who acts on the task: Airflow lets ``user`` change it (PUT) and Tempo's rule lets
    them (assignee, claimer or queue member); 403 otherwise. The reads end here."""
    person = require_act(session, user, task)
    done_reading(session)
    return person


ActorDep = Annotated[Person, Depends(task_actor)]


def task_member(task: TaskDep, session: SessionDep, user: CurrentUser) -> Person:
    """Someone Airflow lets change the task (PUT) and Tempo's directory knows; 403 otherwise.
    Commenting needs no more; the pages' other checks start here."""
    require(user, "PUT", "HITL_DETAIL", task.dag_id)
    person = person_of(session, user)
    if person is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You are not in Tempo's directory.")
    return person


MemberDep = Annotated[Person, Depends(task_member)]


def commenter(person: MemberDep, session: SessionDep) -> Person:
    """The member who comments (anyone ``task_member`` lets in). The reads end here."""
    done_reading(session)
    return person


CommenterDep = Annotated[Person, Depends(commenter)]


async def task_form(request: Request, user: CurrentUser, task_pk: TaskPk) -> dict[str, Any]:
    """The form posted from a task's page, once its CSRF token proves it came from the page Tempo
    rendered for ``user`` and this task; 403 otherwise.

    Declare it before any dependency that loads the task: a forged form then learns nothing, not
    even whether the task exists.
    """
    data = await form_data(request)
    check_csrf(data.get("csrf"), user_name(user), f"task:{task_pk}")
    return data


TaskFormDep = Annotated[dict[str, Any], Depends(task_form)]


# --- signed links ------------------------------------------------------------------------------------


class LinkRefused(Exception):
    """A signed link that cannot be used: expired (410), forged or for another page (404), or naming
    a task that is gone or no longer the link's person's. ``web/app.py`` shows it as the page "This
    link cannot be used"."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


_Verified = TypeVar("_Verified")


def _verified(verify: Callable[[str], _Verified], token: str, expired: str) -> _Verified:
    try:
        return verify(token)
    except links.LinkExpired:
        raise LinkRefused(expired, status.HTTP_410_GONE) from None
    except links.LinkError as exc:
        raise LinkRefused(str(exc), status.HTTP_404_NOT_FOUND) from None


def link_claims(token: str) -> links.LinkClaims:
    """The claims of an emailed task link (``/act/{token}``)."""
    return _verified(links.verify, token, "The link has expired. Ask for the task to be sent to you again.")


LinkClaimsDep = Annotated[links.LinkClaims, Depends(link_claims)]


def link_task(claims: LinkClaimsDep, session: SessionDep) -> Task:
    """The task an emailed link names, open or closed; refused when it no longer exists."""
    try:
        return get_task(session, claims.task_pk)
    except TaskNotFound:
        raise LinkRefused("This task no longer exists.", status.HTTP_404_NOT_FOUND) from None


LinkTaskDep = Annotated[Task, Depends(link_task)]


def assigned_link_task(task: LinkTaskDep, claims: LinkClaimsDep, session: SessionDep) -> Task:
    """The link's task, refused while it is open but no longer for the link's person (a closed one
    is let through: its page says what happened). The reads end here."""
    if task.status in ACTIVE_TASK_STATUSES and not may_act(
        session, session.get(Person, claims.username), task
    ):
        raise LinkRefused("This task is no longer assigned to you.", status.HTTP_403_FORBIDDEN)
    done_reading(session)
    return task


AssignedLinkTaskDep = Annotated[Task, Depends(assigned_link_task)]


def respond_claims(token: str) -> links.LinkClaims:
    """The claims of a counterparty's result link (``/respond/{token}``)."""
    return _verified(
        lambda value: links.verify(value, expected_purpose="respond"),
        token,
        "The link has expired. Ask us to send the result again.",
    )


RespondClaimsDep = Annotated[links.LinkClaims, Depends(respond_claims)]


def respond_task(claims: RespondClaimsDep, session: SessionDep) -> Task:
    """The counterparty's task a result link names; refused when it is gone or is not the link's
    counterparty's. The reads end here."""
    try:
        task = get_task(session, claims.task_pk)
    except TaskNotFound:
        raise LinkRefused("This request no longer exists.", status.HTTP_404_NOT_FOUND) from None
    if task.assignee != claims.username:
        raise LinkRefused("This link is not meant for this request.", status.HTTP_403_FORBIDDEN)
    done_reading(session)
    return task


#: For a POST, call ``respond_task`` once the form's CSRF token checked out instead.
RespondTaskDep = Annotated[Task, Depends(respond_task)]


def status_process(token: str, session: SessionDep) -> Process:
    """The process a requester's status link names; refused when forged, too old or gone."""
    process_pk = _verified(links.verify_request_status, token, "The link has expired.")
    process = session.get(Process, process_pk)
    if process is None:
        raise LinkRefused("This request no longer exists.", status.HTTP_404_NOT_FOUND)
    return process


StatusProcessDep = Annotated[Process, Depends(status_process)]
