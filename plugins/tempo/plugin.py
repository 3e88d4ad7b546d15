"""The Airflow plugin: Tempo's web app at ``/tempo``, its entries in Airflow's navigation, its
listeners, and the clock that runs in every API server.

Airflow loads plugins in every component, task workers included, so this module stays light: the
web app (FastAPI, Airflow's API security, templates) is built on its first request, and the clock
(``tempo.clock``) starts with the API server's ASGI lifespan; both only ever happen in the API
server. Importing this module has no side effects: no tables, no connections.
"""

from __future__ import annotations

import base64
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


# Feather-style line icons (24 x 24, round strokes), one colour for Airflow's light theme, one for its dark.
_INBOX_ICON = (
    '<path d="M22 12h-6l-2 3h-4l-2-3H2"/><path d="M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6'
    'l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"/>'
)
_START_ICON = '<circle cx="12" cy="12" r="10"/><path d="M12 8v8M8 12h8"/>'
_REPORTS_ICON = '<path d="M18 20V10M12 20V4M6 20v-6"/>'
_SLA_ICON = '<circle cx="12" cy="12" r="10"/><path d="M12 6v6l4 2"/>'


def _icon(paths: str, colour: str) -> str:
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{colour}" '
        f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{paths}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _nav(name: str, path: str, url_route: str, icon: str) -> dict[str, Any]:
    return {
        "name": name,
        "href": f"{URL_PREFIX}{path}",
        "destination": "nav",
        "url_route": url_route,
        "nav_top_level": True,
        "icon": _icon(icon, "#3f4753"),
        "icon_dark_mode": _icon(icon, "#d5dae1"),
    }


class TempoPlugin(AirflowPlugin):
    name = "tempo"
    listeners = [listeners]
    fastapi_apps = [{"name": "Tempo", "app": LazyWebApp(), "url_prefix": URL_PREFIX}]
    fastapi_root_middlewares = [{"name": "Tempo clock", "middleware": ClockLifespan}]
    # Tempo's pages stand in Airflow's navigation bar itself (``nav_top_level``), not in Browse beside
    # the audit log; the outbox is an operator's page, so it joins Airflow's Admin menu.
    external_views = [
        _nav("Tempo inbox", "/inbox", "tempo", _INBOX_ICON),
        _nav("Start a process", "/start", "tempo-start", _START_ICON),
        _nav("Reports", "/reports/funnel", "tempo-reports", _REPORTS_ICON),
        _nav("SLA misses", "/sla", "tempo-sla", _SLA_ICON),
        {
            "name": "Tempo outbox",
            "href": f"{URL_PREFIX}/admin/outbox",
            "destination": "nav",
            "url_route": "tempo-outbox",
            "category": "admin",
        },
    ]
