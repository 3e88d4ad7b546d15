"""The pages behind emailed links, for people without an Airflow login.

``GET /tempo/act/{token}`` only shows the task and its form (mail scanners and link previews open
links); ``POST`` with the page's CSRF token records the answer as the person the link was made for.
The token names task, person and purpose, is signed and expires; once the task is closed the link
shows what happened and accepts nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response

from tempo import actions, links, required_actions
from tempo.forms import FormErrors
from tempo.store.engine import read_session
from tempo.store.models import ACTIVE_TASK_STATUSES, Person
from tempo.store.tasks import TaskConflict, TaskNotFound, get_task
from tempo.web import URL_PREFIX
from tempo.web.common import form_data, posted_version, render, task_view
from tempo.web.security import check_csrf, csrf_token, may_act

router = APIRouter(include_in_schema=False)


def _refuse(request: Request, message: str, status_code: int) -> Response:
    return render(
        request,
        "message.html",
        {"title": "This link cannot be used", "message": message},
        status_code=status_code,
    )


def _claims(request: Request, token: str) -> links.LinkClaims | Response:
    try:
        return links.verify(token)
    except links.LinkExpired:
        return _refuse(request, "The link has expired. Ask for the task to be sent to you again.", 410)
    except links.LinkError as exc:
        return _refuse(request, str(exc), 404)


def _page(
    request: Request,
    token: str,
    claims: links.LinkClaims,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with read_session() as session:
        try:
            task = get_task(session, claims.task_id)
        except TaskNotFound:
            return _refuse(request, "This task no longer exists.", 404)
        person = session.get(Person, claims.username)
        if task.status not in ACTIVE_TASK_STATUSES:
            who = f" by {task.completed_by}" if task.completed_by else ""
            return render(
                request,
                "message.html",
                {
                    "title": "Nothing left to do",
                    "message": f"This task is already {task.status.value}{who}.",
                },
                status_code=status.HTTP_409_CONFLICT if status_code != 200 else 200,
            )
        if not may_act(session, person, task):
            return _refuse(request, "This task is no longer assigned to you.", 403)
        view = task_view(session, task)
        client_email = required_actions.client_email_view(session, task)
    return render(
        request,
        "act.html",
        {
            "view": view,
            "task": task,
            "person": person,
            "token": token,
            "errors": errors or {},
            "values": values or {},
            "csrf": csrf_token(f"link:{claims.username}", f"task:{task.id}"),
            "client_email": client_email,
            "client_email_action": f"{URL_PREFIX}/act/{token}/email-client",
        },
        status_code=status_code,
    )


@router.get("/act/{token}")
def show(request: Request, token: str) -> Response:
    claims = _claims(request, token)
    if isinstance(claims, Response):
        return claims
    return _page(request, token, claims)


@router.post("/act/{token}")
async def act(request: Request, token: str) -> Response:
    claims = _claims(request, token)
    if isinstance(claims, Response):
        return claims
    data = await form_data(request)
    answers = {k: v for k, v in data.items() if k not in ("csrf", "outcome", "version")}
    with read_session() as session:
        try:
            task = get_task(session, claims.task_id)
        except TaskNotFound:
            return _refuse(request, "This task no longer exists.", 404)
        if task.status in ACTIVE_TASK_STATUSES and not may_act(
            session, session.get(Person, claims.username), task
        ):
            return _refuse(request, "This task is no longer assigned to you.", 403)
    check_csrf(str(data.get("csrf") or ""), f"link:{claims.username}", f"task:{claims.task_id}")
    try:
        actions.complete(
            claims.task_id,
            actor=claims.username,
            answers=answers,
            outcome=str(data.get("outcome") or "") or None,
            expected_version=posted_version(data),
        )
    except FormErrors as exc:
        return _page(request, token, claims, errors=exc.errors, values=answers, status_code=422)
    except TaskConflict as exc:
        return render(
            request, "message.html", {"title": "Nothing left to do", "message": str(exc)}, status_code=409
        )
    return RedirectResponse(f"{URL_PREFIX}/act/{token}/done", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/act/{token}/email-client")
async def email_client(request: Request, token: str) -> Response:
    """The step's required action, for the person the link was made for (see ``required_actions``)."""
    claims = _claims(request, token)
    if isinstance(claims, Response):
        return claims
    data = await form_data(request)
    with read_session() as session:
        try:
            task = get_task(session, claims.task_id)
        except TaskNotFound:
            return _refuse(request, "This task no longer exists.", 404)
        if task.status in ACTIVE_TASK_STATUSES and not may_act(
            session, session.get(Person, claims.username), task
        ):
            return _refuse(request, "This task is no longer assigned to you.", 403)
    check_csrf(str(data.get("csrf") or ""), f"link:{claims.username}", f"task:{claims.task_id}")
    values = {"client_subject": str(data.get("subject", "")), "client_text": str(data.get("text", ""))}
    try:
        actions.email_client(
            claims.task_id,
            actor=claims.username,
            subject=values["client_subject"],
            text=values["client_text"],
        )
    except FormErrors as exc:
        errors = {f"client_{k}" if k in ("subject", "text", "to") else k: v for k, v in exc.errors.items()}
        return _page(request, token, claims, errors=errors, values=values, status_code=422)
    except TaskConflict as exc:
        return render(
            request, "message.html", {"title": "Nothing left to do", "message": str(exc)}, status_code=409
        )
    return RedirectResponse(f"{URL_PREFIX}/act/{token}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/act/{token}/done")
def done(request: Request, token: str) -> Response:
    claims = _claims(request, token)
    if isinstance(claims, Response):
        return claims
    with read_session() as session:
        task = get_task(session, claims.task_id)
    if task.completed_by != claims.username:
        return _refuse(request, "This task was not completed through this link.", 404)
    return render(
        request,
        "message.html",
        {
            "title": "Thank you",
            "message": f"Your answer to “{task.title}” is recorded.",
            "answer": task.result,
            "outcome": task.outcome,
        },
    )
