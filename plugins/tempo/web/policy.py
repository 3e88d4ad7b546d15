"""Who may see and do what: every access decision of Tempo's web app, as FastAPI dependencies.

A route's signature says what it needs (``ReadableTaskDep``, ``ActorDep``, ``LinkClaimsDep``...);
the dependency decides and raises when the answer is no: ``HTTPException`` (401/403/404),
``TaskConflict`` for a task already closed, ``LinkRefused`` for a link that cannot be used.
``web/app.py`` turns each into a page or JSON once, so a route's body does only its own work.

The rules, on top of Airflow's authentication and auth manager (``web/security.py``):

- *Reading* a task, a process record or a file follows the reports' rule
  (``reports.visible_processes``): the process's requester, whoever performs or may take one of its
  steps (assignee, claimer, queue member), the heads of its units and the units above, and Airflow's
  ops and admins. A step and its files are read with their process.
- *Acting* on a task is for its assignee, its claimer or a member of its queue, and while its
  holder is away for their deputy (``may_act``); reassigning for heads of its unit, the holder's
  manager, ops and admins (``may_manage``). Whoever may act on a task may read it, and an absent
  person still reads the tasks a deputy holds for them.
- *Recording an absence* is for the person, their manager, ops and admins (``may_record_absence``).
- *Cookie-borne writes* to the JSON API carry the CSRF token of the page they act from
  (``api_csrf``); a bearer token is no ambient credential and needs none. HTML forms check their
  token before anything is loaded (``TaskFormDep``).
- *Signed links* stand for their person or counterparty only, on their task only; a public
  request's confirmation link stands for the mailbox it was sent to, once.

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
from sqlalchemy import select
from sqlalchemy.orm import Session

from tempo import directory, links, public_requests, reports
from tempo.store.engine import read_session
from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    MAX_ID,
    Attachment,
    PendingRequest,
    Person,
    Process,
    Task,
    TaskStatus,
    utcnow,
)
from tempo.store.tasks import TaskConflict, TaskNotFound, get_task
from tempo.web.common import StoreId, form_data, load_task
from tempo.web.security import CurrentUser, check_csrf, is_operator, require, require_read, user_name


def get_session() -> Iterator[Session]:
    with read_session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def done_reading(session: Session) -> None:
    """End the request's read transaction and hand its connection back before an action writes in
    a transaction of its own; whatever the route reads afterwards (a page shown again) is read
    afresh. The session stays usable, and what it loaded stays readable."""
    session.close()


# --- the rules -------------------------------------------------------------------------------------


def person_of(session: Session, user: Any) -> Person | None:
    """The active Tempo person behind an Airflow user: the same username, else the email address
    the auth manager keeps for the account (never one read out of the user's chosen name).

    An address two people share maps to nobody, and a deactivated person is nobody.
    """
    person = directory.get_person(session, user_name(user))
    if person is None:
        email = getattr(user, "email", None)
        if isinstance(email, str) and email:
            person = directory.person_by_email(session, email)
    return person if person is not None and person.active else None


def viewer_scope(session: Session, user: Any) -> reports.Scope:
    """What ``user`` may read: the reports' scope of the person behind the login."""
    person = person_of(session, user)
    return reports.scope_for(session, person.username if person else None, admin=is_operator(user))


def may_read_process(session: Session, user: Any, process_id: int) -> bool:
    scope = viewer_scope(session, user)
    found = session.scalar(
        select(Process.id).where(Process.id == process_id, reports.visible_processes(scope))
    )
    return found is not None


def may_act(session: Session, person: Person | None, task: Task) -> bool:
    """Tempo's own rule: the assignee, the claimer, or a member of the task's queue.

    A task with no assignee and no queue belongs to nobody until a manager gives it to someone.
    """
    if person is None or not person.active or task.status not in ACTIVE_TASK_STATUSES:
        return False
    if task.status == TaskStatus.CLAIMED:
        return _holds(session, task.claimed_by, person, task.dag_id)
    if task.assignee:
        return _holds(session, task.assignee, person, task.dag_id)
    if task.candidate_role is None and task.candidate_unit is None:
        return False
    in_role = task.candidate_role is None or task.candidate_role in directory.roles_of(
        session, person.username
    )
    in_unit = task.candidate_unit is None or person.unit_code == task.candidate_unit
    return in_role and in_unit


def _holds(session: Session, holder: str | None, person: Person, dag_id: str) -> bool:
    """Whether ``person`` holds a task of ``holder``'s: they are the holder, or stand in for them."""
    if holder is None or holder == person.username:
        return holder is not None
    absent = directory.active_person(session, holder)
    return absent is not None and directory.stand_in(session, absent, dag_id).username == person.username


def may_record_absence(session: Session, user: Any, person: Person | None, username: str) -> bool:
    """Whether ``user`` (``person`` in the directory) may record ``username``'s absence: their own,
    a person they manage, anyone's for ops and admins."""
    if is_operator(user):
        return True
    if person is None:
        return False
    manager = directory.manager_of(session, username)
    return username == person.username or (manager is not None and manager.username == person.username)


def absences_reader(user: CurrentUser) -> None:
    """Airflow lets ``user`` read (403 otherwise), asked before an absence's body is read."""
    require_read(user)


def require_absence_recorder(session: Session, user: Any, username: str) -> Person | None:
    """The person recording ``username``'s absence (None for an operator outside the directory),
    once Airflow lets ``user`` read and ``may_record_absence`` says yes; 403 otherwise."""
    require_read(user)
    person = person_of(session, user)
    if not may_record_absence(session, user, person, username):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only the person, their manager or an admin may record this absence."
        )
    return person


def may_manage(session: Session, user: Any, person: Person | None, task: Task) -> bool:
    """Reassigning is for heads of the task's unit, the holder's manager, and Airflow's ops and admins."""
    if is_operator(user):
        return True
    if person is None or not person.active:
        return False
    holder = task.claimed_by or task.assignee
    if holder:
        manager = directory.manager_of(session, holder)
        if manager is not None and manager.username == person.username:
            return True
    unit = task.candidate_unit
    if unit is None and holder:
        holder_person = directory.get_person(session, holder)
        unit = holder_person.unit_code if holder_person else None
    head = directory.head_of_unit(session, unit) if unit else None
    return head is not None and head.username == person.username


def require_act(session: Session, user: Any, task: Task) -> Person:
    """The person who acts on ``task``: Airflow lets ``user`` change it (PUT) and ``may_act`` says
    yes; 403 otherwise."""
    require(user, "PUT", "HITL_DETAIL", task.dag_id)
    person = person_of(session, user)
    if not may_act(session, person, task):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This task is not yours to act on.")
    assert person is not None
    return person


# --- what a logged-in person reads ------------------------------------------------------------------

#: Tempo's own id of a task (its primary key) in a path, where it is called ``task_id``.
TaskPk = Annotated[
    int, PathParam(alias="task_id", ge=1, le=MAX_ID, description="Tempo's id of the task (`id` in its JSON).")
]


def path_task(session: SessionDep, task_pk: TaskPk) -> Task:
    """The task the path names; 404 when there is none."""
    return load_task(session, task_pk)


TaskDep = Annotated[Task, Depends(path_task)]


def _readable(session: Session, user: Any, dag_id: str, process_id: int, what: str) -> None:
    require_read(user, dag_id)
    if not may_read_process(session, user, process_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"This {what} is not among those you may see.")


def readable_task(task: TaskDep, session: SessionDep, user: CurrentUser) -> Task:
    """The task, when Airflow lets ``user`` read the DAG's human tasks and its process is one they
    may see, or the task one they may act on (a deputy's); 403 otherwise."""
    require_read(user, task.dag_id)
    if not may_act(session, person_of(session, user), task):
        _readable(session, user, task.dag_id, task.process_id, "task")
    return task


ReadableTaskDep = Annotated[Task, Depends(readable_task)]


def readable_process(process_id: StoreId, session: SessionDep, user: CurrentUser) -> Process:
    """The process the path names (404 when there is none), when ``user`` may see it; 403 otherwise."""
    process = session.get(Process, process_id)
    if process is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Process {process_id} does not exist.")
    _readable(session, user, process.dag_id, process.id, "process")
    return process


ReadableProcessDep = Annotated[Process, Depends(readable_process)]


def readable_attachment(attachment_id: StoreId, session: SessionDep, user: CurrentUser) -> Attachment:
    """A file, read with its process (a file sent with a request belongs to no task)."""
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such attachment.")
    process = session.get_one(Process, attachment.process_id)
    _readable(session, user, process.dag_id, process.id, "file")
    return attachment


ReadableAttachmentDep = Annotated[Attachment, Depends(readable_attachment)]


def reader_scope(session: SessionDep, user: CurrentUser) -> reports.Scope:
    """What a listing shows ``user`` (the reports, the SLA misses page), once Airflow lets them read."""
    require_read(user)
    return viewer_scope(session, user)


ScopeDep = Annotated[reports.Scope, Depends(reader_scope)]


# --- what a logged-in person does -------------------------------------------------------------------


def open_task(task: TaskDep) -> Task:
    """The task while it is still open or claimed; a closed one is a ``TaskConflict`` (409)."""
    if task.status not in ACTIVE_TASK_STATUSES:
        raise TaskConflict(task.id, f"This task is already {task.status.value}.")
    return task


#: Declared before ``ActorDep``: a closed task is a 409 even for someone it was never meant for.
OpenTaskDep = Annotated[Task, Depends(open_task)]


def task_actor(task: TaskDep, session: SessionDep, user: CurrentUser) -> Person:
    """The person who acts on the task (``require_act``); 403 otherwise. The reads end here."""
    person = require_act(session, user, task)
    done_reading(session)
    return person


ActorDep = Annotated[Person, Depends(task_actor)]


def task_member(task: TaskDep, session: SessionDep, user: CurrentUser) -> Person:
    """Someone Airflow lets change the task (PUT) and Tempo's directory knows; 403 otherwise.
    Commenting needs no more; the other checks start here."""
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


def task_holder(task: TaskDep, person: MemberDep, session: SessionDep) -> Person:
    """The member who claimed the task, the one who may put it back; 403 otherwise. The reads end here."""
    if task.claimed_by != person.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the person who claimed the task may unclaim it.")
    done_reading(session)
    return person


HolderDep = Annotated[Person, Depends(task_holder)]


def task_manager(task: TaskDep, person: MemberDep, session: SessionDep, user: CurrentUser) -> Person:
    """A member who may reassign the task (``may_manage``); 403 otherwise. The reads end here."""
    if not may_manage(session, user, person, task):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only a manager of this task may reassign it.")
    done_reading(session)
    return person


ManagerDep = Annotated[Person, Depends(task_manager)]


async def task_form(request: Request, user: CurrentUser, task_pk: TaskPk) -> dict[str, Any]:
    """The form posted from a task's page, once its CSRF token proves it came from the page Tempo
    rendered for ``user`` and this task; 403 otherwise.

    Declare it before any dependency that loads the task: a forged form then learns nothing, not
    even whether the task exists.
    """
    data = await form_data(request)
    check_csrf(data.get("csrf"), user_name(user), task_purpose(task_pk))
    return data


TaskFormDep = Annotated[dict[str, Any], Depends(task_form)]


def task_purpose(task_pk: int) -> str:
    """What the CSRF token of a task's page is for."""
    return f"task:{task_pk}"


def start_purpose(dag_id: str) -> str:
    """What the CSRF token of a start form is for."""
    return f"start:{dag_id}"


#: What the CSRF token of the absences page is for.
ABSENCES_PURPOSE = "absences"


#: The header a cookie-borne API write carries its CSRF token in (a cross-site form cannot set it).
CSRF_HEADER = "X-CSRF-Token"


async def api_csrf(request: Request, user: CurrentUser) -> None:
    """The JSON API's writes, when the caller is known by Airflow's login cookie alone: the CSRF
    token of the page the write acts from (the task's page, the start form), in ``X-CSRF-Token`` or
    a multipart ``csrf`` field; 403 otherwise. Reads, and calls with a bearer token, need none.

    A router-level dependency, so it runs before any route dependency reads the store.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or request.headers.get("authorization"):
        return
    params = request.path_params
    if "task_id" in params:
        purpose = task_purpose(params["task_id"])
    else:
        purpose = start_purpose(params["dag_id"]) if "dag_id" in params else ABSENCES_PURPOSE
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith("multipart/form-data"):
        field = (await request.form()).get("csrf")
        token = field if isinstance(field, str) else None
    check_csrf(token, user_name(user), purpose)


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


def pending_request(token: str, session: SessionDep) -> PendingRequest:
    """The request a confirmation link names, while it still waits; refused when forged, expired,
    or already confirmed (409: the link did its work). The reads end here."""
    secret = _verified(
        links.verify_request_confirmation, token, "The link has expired. Please send your request again."
    )
    pending = public_requests.find(session, secret)
    if pending is None or pending.expires_at < utcnow():
        raise LinkRefused("The link has expired. Please send your request again.", status.HTTP_410_GONE)
    if pending.confirmed_at is not None:
        raise LinkRefused(ALREADY_CONFIRMED, status.HTTP_409_CONFLICT)
    done_reading(session)
    return pending


ALREADY_CONFIRMED = "This request is already confirmed: the link to follow it was emailed to you."

#: For a POST, ``public_requests.claim`` decides which of two confirmations at once goes on.
PendingRequestDep = Annotated[PendingRequest, Depends(pending_request)]
