"""Tempo's FastAPI app, mounted by the plugin at ``/tempo`` in Airflow's API server."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from tempo.forms import UNSAFE_CHARACTERS_MESSAGE, has_unsafe_characters
from tempo.web import URL_PREFIX, admin, api, email_links, pages, public
from tempo.web import reports as report_routes
from tempo.web.common import SECURITY_HEADERS, render


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

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # The JSON API answers JSON; pages answer a page a person can read.
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        title = {401: "Please log in", 403: "Not allowed", 404: "Not found", 409: "Already done"}.get(
            exc.status_code, "Something is wrong"
        )
        detail = exc.detail
        if isinstance(detail, dict) and isinstance(detail.get("errors"), dict):
            detail = "; ".join(f"{field}: {message}" for field, message in detail["errors"].items())
        response = render(
            request, "message.html", {"title": title, "message": str(detail)}, status_code=exc.status_code
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        problems = _unsafe_parameters(request)
        if problems:
            response = await http_error(
                request, HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": problems})
            )
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


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
