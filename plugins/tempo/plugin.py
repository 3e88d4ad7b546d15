"""The Airflow plugin: Tempo's web app at ``/tempo``, its entries in Airflow's navigation, its
listeners, and the clock that runs in every API server.

Airflow loads plugins in every component, task workers included, so this module stays light: the
web app (FastAPI, Airflow's API security, templates) is built on its first request, and the clock
(``tempo.clock``) starts with the API server's ASGI lifespan; both only ever happen in the API
server. Importing this module has no side effects: no tables, no connections.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from tempo import listeners
from tempo.web import URL_PREFIX


class LazyWebApp:
    """An ASGI app that builds Tempo's FastAPI app when the first request arrives."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from tempo.web.app import create_app

                self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)

    def __repr__(self) -> str:
        return "tempo.web.app:create_app()"


class ClockLifespan:
    """Root ASGI middleware: runs Tempo's clock for as long as the API server process serves.

    A middleware rather than the web app's own lifespan: Airflow enters the lifespan of mounted
    ``FastAPI`` instances only, and Tempo's app is built lazily. Every other scope passes through.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        from tempo.clock import running

        async with running():
            await self.app(scope, receive, send)


class TempoPlugin(AirflowPlugin):
    name = "tempo"
    listeners = [listeners]
    fastapi_apps = [{"name": "Tempo", "app": LazyWebApp(), "url_prefix": URL_PREFIX}]
    fastapi_root_middlewares = [{"name": "Tempo clock", "middleware": ClockLifespan}]
    external_views = [
        {
            "name": "Tempo inbox",
            "href": f"{URL_PREFIX}/inbox",
            "destination": "nav",
            "url_route": "tempo",
            "category": "browse",
        },
        {
            "name": "SLA misses",
            "href": f"{URL_PREFIX}/sla",
            "destination": "nav",
            "url_route": "tempo-sla",
            "category": "browse",
        },
        {
            "name": "Reports",
            "href": f"{URL_PREFIX}/reports/funnel",
            "destination": "nav",
            "url_route": "tempo-reports",
            "category": "browse",
        },
        {
            "name": "Start a process",
            "href": f"{URL_PREFIX}/start",
            "destination": "nav",
            "url_route": "tempo-start",
            "category": "browse",
        },
    ]
