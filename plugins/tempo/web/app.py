"""Tempo's FastAPI app, mounted by the plugin at ``/tempo`` in Airflow's API server.

Errors are answered here, once: ``HTTPException``, ``FormErrors`` (422, a message per field),
``TaskConflict`` and ``BusinessKeyTaken`` (409), ``LinkRefused`` (the page "This link cannot be
used") and a report's ``BadFilters`` (422, its page with the filters again) become JSON under
``/tempo/api/`` (or for a client that accepts JSON) and a page a person can read everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from tempo.forms import UNSAFE_CHARACTERS_MESSAGE, FormErrors, has_unsafe_characters
from tempo.store.tasks import TaskConflict
from tempo.web import URL_PREFIX, admin, api, email_links, pages, public
from tempo.web import reports as report_routes
from tempo.web.common import SECURITY_HEADERS, render
from tempo.web.policy import LinkRefused
from tempo.web.starting import BusinessKeyTaken


def create_app() -> FastAPI:
    app = FastAPI(
        title="Tempo",
        description="Human steps of Airflow processes: inbox, task forms, start forms and their JSON API.",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.include_router(api.router)
    app.include_router(email_links.router)
    app.include_router(public.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(report_routes.api)
    app.include_router(report_routes.pages)

    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(FormErrors, _form_errors)  # type: ignore[arg-type]
    app.add_exception_handler(TaskConflict, _task_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(LinkRefused, _link_refused)  # type: ignore[arg-type]
    app.add_exception_handler(BusinessKeyTaken, _business_key_taken)  # type: ignore[arg-type]
    app.add_exception_handler(report_routes.BadFilters, _bad_filters)  # type: ignore[arg-type]

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        problems = _unsafe_parameters(request)
        if problems:
            response = _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": problems})
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


# --- errors: JSON for the API, a page a person can read for the pages --------------------------------

_TITLES = {
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    409: "Already done",
    413: "Too big",
    429: "Too many requests",
}


def _error(
    request: Request,
    status_code: int,
    detail: Any,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``{"detail": detail}`` for the JSON API; else the message page, field errors one after another."""
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    if isinstance(detail, dict) and isinstance(detail.get("errors"), dict):
        detail = "; ".join(f"{field}: {message}" for field, message in detail["errors"].items())
    response = render(
        request,
        "message.html",
        {"title": title or _TITLES.get(status_code, "Something is wrong"), "message": str(detail)},
        status_code=status_code,
    )
    if headers:
        response.headers.update(headers)
    return response


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(request, exc.status_code, exc.detail, headers=exc.headers)


async def _form_errors(request: Request, exc: FormErrors) -> Response:
    """Invalid input that no page showed again with its form: 422 with a message per field."""
    return _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": exc.errors})


async def _task_conflict(request: Request, exc: TaskConflict) -> Response:
    """Someone else acted first, or the task is closed: 409."""
    return _error(request, status.HTTP_409_CONFLICT, str(exc), title="Nothing left to do")


async def _business_key_taken(request: Request, exc: BusinessKeyTaken) -> Response:
    """A start whose business key already has a process (the start page shows its own warning)."""
    processes = [p.id for p in exc.processes]
    if _wants_json(request):
        body = {"detail": str(exc), "business_key": exc.key, "processes": processes}
        return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)
    return _error(request, status.HTTP_409_CONFLICT, str(exc), title="Already started")


_REPORT_TITLES = {
    "funnel": "Funnel",
    "overdue": "Overdue tasks",
    "performance": "Performance",
    "tasks": "Tasks",
    "processes": "Process log",
}


async def _bad_filters(request: Request, exc: report_routes.BadFilters) -> Response:
    """A report asked with filters it cannot use: the report's page, its filters as sent and a
    message for each, so that the person corrects them there."""
    if _wants_json(request):
        return _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": exc.errors})
    return render(
        request,
        "reports_problem.html",
        {
            "user": exc.user,
            "scope": exc.scope,
            "title": _REPORT_TITLES.get(request.url.path.rsplit("/", 1)[-1], "Report"),
            "action": request.url.path,
            "values": dict(request.query_params),
            "errors": exc.errors,
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _link_refused(request: Request, exc: LinkRefused) -> Response:
    return _error(request, exc.status_code, exc.message, title="This link cannot be used")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(f"{URL_PREFIX}/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


def _unsafe_parameters(request: Request) -> dict[str, str]:
    """Path and query parameters holding NUL or other control characters, which no page or report
    means and PostgreSQL refuses in text: a 422 naming them before any route looks at them."""
    problems: dict[str, str] = {}
    if has_unsafe_characters(request.url.path):
        problems["path"] = UNSAFE_CHARACTERS_MESSAGE
    for name, value in request.query_params.multi_items():
        if has_unsafe_characters(name) or has_unsafe_characters(value):
            problems[name[:100]] = UNSAFE_CHARACTERS_MESSAGE
    return problems
