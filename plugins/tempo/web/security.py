"""Who is asking, what Airflow lets them do, and the CSRF tokens of Tempo's forms.

Logged-in routes authenticate through Airflow's own dependency (bearer JWT or the UI's ``_token``
cookie: 401 without one) and ask Airflow's auth manager, with the same questions Airflow asks for
its human-in-the-loop responses: reading a task is GET on the DAG's ``HITL_DETAIL``, acting on it is
PUT, starting a process is POST on the DAG's ``RUN``. Tempo's own rules on top (who sees which
process, who acts on which task) are in ``web/policy.py``.

HTML forms carry a CSRF token: an HMAC over (user, purpose, task) with a short lifetime. A
cross-site form could ride on the login cookie; it cannot forge that token.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import HTTPException, Request, status
from itsdangerous import BadSignature

from tempo import links

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
