"""The pages behind emailed links, for people without an Airflow login.

``GET /tempo/act/{token}`` only shows the task and its form (mail scanners and link previews open
links); ``POST`` with the page's CSRF token records the answer as the person the link was made for.
The token names task, person and purpose, is signed and expires; once the task is closed the link
shows what happened and accepts nothing. A link that cannot be used is refused by its dependencies
(``web/policy.py``) with the page "This link cannot be used".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from tempo import actions, links, required_actions, wording
from tempo.forms import Form, FormErrors
from tempo.store.models import ACTIVE_TASK_STATUSES, Person, Task
from tempo.web import URL_PREFIX
from tempo.web.common import (
    client_email_errors,
    form_data,
    form_labels,
    posted_version,
    render,
    task_view,
    unconfirmed_destructive,
)
from tempo.web.policy import (
    AssignedLinkTaskDep,
    LinkClaimsDep,
    LinkRefused,
    LinkTaskDep,
    SessionDep,
    assigned_link_task,
    link_task,
)
from tempo.web.security import check_csrf, csrf_token

router = APIRouter(include_in_schema=False)


def _path(token: str) -> str:
    return f"{URL_PREFIX}/act/{token}"


def _csrf_subject(claims: links.LinkClaims) -> str:
    return f"link:{claims.username}"


def _page(
    request: Request,
    session: Session,
    token: str,
    claims: links.LinkClaims,
    task: Task,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    confirm: str | None = None,
) -> Response:
    """The task and its form (asking to confirm the destructive outcome ``confirm``); once the task
    is closed, what happened (409 for a refused answer)."""
    if task.status not in ACTIVE_TASK_STATUSES:
        who = f" by {task.completed_by}" if task.completed_by else ""
        return render(
            request,
            "message.html",
            {"title": "Nothing left to do", "message": f"This task is already {task.status.value}{who}."},
            status_code=status.HTTP_409_CONFLICT if status_code != 200 else 200,
        )
    return render(
        request,
        "act.html",
        {
            "view": task_view(session, task),
            "task": task,
            "person": session.get(Person, claims.username),
            "token": token,
            "errors": errors or {},
            "values": values or {},
            "confirm": confirm,
            "csrf": csrf_token(_csrf_subject(claims), f"task:{task.id}"),
            "client_email": required_actions.client_email_view(session, task),
            "client_email_action": f"{_path(token)}/email-client",
        },
        status_code=status_code,
    )


def _refused_answer(
    request: Request,
    session: Session,
    token: str,
    claims: links.LinkClaims,
    errors: dict[str, str],
    values: dict[str, Any],
) -> Response:
    """The page again after an answer was refused (422), as the task is now: it may have been
    answered or handed over meanwhile."""
    task = assigned_link_task(link_task(claims, session), claims, session)
    return _page(request, session, token, claims, task, errors, values, status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.get("/act/{token}")
def show(
    request: Request, token: str, claims: LinkClaimsDep, task: AssignedLinkTaskDep, session: SessionDep
) -> Response:
    return _page(request, session, token, claims, task)


@router.post("/act/{token}")
async def act(
    request: Request, token: str, claims: LinkClaimsDep, task: AssignedLinkTaskDep, session: SessionDep
) -> Response:
    data = await form_data(request)
    check_csrf(str(data.get("csrf") or ""), _csrf_subject(claims), f"task:{task.id}")
    answers = {k: v for k, v in data.items() if k not in ("csrf", "outcome", "version", "confirm")}
    try:
        confirm = unconfirmed_destructive(session, task, data, answers)
        if confirm is not None:
            return _page(request, session, token, claims, task, values=answers, confirm=confirm)
        actions.complete(
            task.id,
            actor=claims.username,
            answers=answers,
            outcome=str(data.get("outcome") or "") or None,
            expected_version=posted_version(data),
        )
    except FormErrors as exc:
        return _refused_answer(request, session, token, claims, exc.errors, answers)
    return RedirectResponse(f"{_path(token)}/done", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/act/{token}/email-client")
async def email_client(
    request: Request, token: str, claims: LinkClaimsDep, task: AssignedLinkTaskDep, session: SessionDep
) -> Response:
    """The step's required action, for the person the link was made for (see ``required_actions``)."""
    data = await form_data(request)
    check_csrf(str(data.get("csrf") or ""), _csrf_subject(claims), f"task:{task.id}")
    values = {"client_subject": str(data.get("subject", "")), "client_text": str(data.get("text", ""))}
    try:
        actions.email_client(
            task.id, actor=claims.username, subject=values["client_subject"], text=values["client_text"]
        )
    except FormErrors as exc:
        return _refused_answer(request, session, token, claims, client_email_errors(exc), values)
    return RedirectResponse(_path(token), status_code=status.HTTP_303_SEE_OTHER)


@router.get("/act/{token}/done")
def done(request: Request, claims: LinkClaimsDep, task: LinkTaskDep, session: SessionDep) -> Response:
    if task.completed_by != claims.username:
        raise LinkRefused("This task was not completed through this link.", status.HTTP_404_NOT_FOUND)
    return render(
        request,
        "message.html",
        {
            "title": "Thank you",
            "message": f"Your answer to “{task.title}” is recorded.",
            "answer": wording.Names(session).record(
                task.result or {}, form_labels(Form.from_schema(task.form_schema))
            ),
        },
    )
