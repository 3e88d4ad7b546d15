"""Who is asking, and what they may do.

Logged-in routes authenticate through Airflow's own dependency (bearer JWT or the UI's ``_token``
cookie: 401 without one) and ask Airflow's auth manager, with the same questions Airflow asks for
its human-in-the-loop responses: reading a task is GET on the DAG's ``HITL_DETAIL``, acting on it is
PUT, starting a process is POST on the DAG's ``RUN``. Tempo then adds its own rule: only the person
a task is assigned to (or a member of its queue) acts on it; a manager reassigns it.

HTML forms carry a CSRF token: an HMAC over (user, purpose, task) with a short lifetime. A
cross-site form could ride on the login cookie; it cannot forge that token.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import HTTPException, Request, status
from itsdangerous import BadSignature
from sqlalchemy.orm import Session

from tempo import directory, links
from tempo.store.models import ACTIVE_TASK_STATUSES, Person, Task, TaskStatus

CSRF_MAX_AGE = 12 * 3600
_CSRF_MESSAGE = "The form expired or did not come from Tempo; reload it."


def user_name(user: Any) -> str:
    return str(user.get_name())


def _authorized(user: Any, method: str, entity_name: str, dag_id: str | None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method=method,  # type: ignore[arg-type]
            access_entity=DagAccessEntity[entity_name],
            details=DagDetails(id=dag_id),
            user=user,
        )
    )


def is_operator(user: Any) -> bool:
    """Airflow's ops and admins: those the auth manager lets change Airflow's configuration."""
    from airflow.api_fastapi.app import get_auth_manager

    return bool(get_auth_manager().is_authorized_configuration(method="PUT", user=user))


def require(user: Any, method: str, entity_name: str, dag_id: str | None) -> None:
    if not _authorized(user, method, entity_name, dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Airflow does not allow you this action.")


def require_read(user: Any, dag_id: str | None = None) -> None:
    require(user, "GET", "HITL_DETAIL", dag_id)


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


def may_act(session: Session, person: Person | None, task: Task) -> bool:
    """Tempo's own rule: the assignee, the claimer, or a member of the task's queue.

    A task with no assignee and no queue belongs to nobody until a manager gives it to someone.
    """
    if person is None or not person.active or task.status not in ACTIVE_TASK_STATUSES:
        return False
    if task.status == TaskStatus.CLAIMED:
        return task.claimed_by == person.username
    if task.assignee:
        return task.assignee == person.username
    if task.candidate_role is None and task.candidate_unit is None:
        return False
    in_role = task.candidate_role is None or task.candidate_role in directory.roles_of(
        session, person.username
    )
    in_unit = task.candidate_unit is None or person.unit_code == task.candidate_unit
    return in_role and in_unit


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
    require(user, "PUT", "HITL_DETAIL", task.dag_id)
    person = person_of(session, user)
    if not may_act(session, person, task):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This task is not yours to act on.")
    assert person is not None
    return person


# --- CSRF ------------------------------------------------------------------------------------------


_CSRF_SALT = "tempo.csrf.v1"


def csrf_token(subject: str, purpose: str) -> str:
    return links.dumps_signed({"s": subject, "p": purpose}, salt=_CSRF_SALT)


def check_csrf(token: str | None, subject: str, purpose: str) -> None:
    try:
        data = links.loads_signed(token or "", salt=_CSRF_SALT, max_age=CSRF_MAX_AGE)
    except BadSignature:
        raise HTTPException(status.HTTP_403_FORBIDDEN, _CSRF_MESSAGE) from None
    if data != {"s": subject, "p": purpose}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, _CSRF_MESSAGE)


#: Every logged-in route depends on this: Airflow's own authentication (401 without a valid token).
CurrentUser = GetUserDep


def navigation(request: Request, user: CurrentUser) -> None:
    """What the header of a logged-in page offers (a dependency of the pages' routers, read by
    ``web.common.render``): the outbox only to those who may open it."""
    request.state.tempo_operator = is_operator(user)
