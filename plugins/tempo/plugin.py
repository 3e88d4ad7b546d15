"""The Airflow plugin: Tempo's web app at ``/tempo``, its entry in Airflow's navigation, its listeners.

Importing this module has no side effects: no tables are created and nothing is connected to.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tempo import listeners
from tempo.web.app import URL_PREFIX, create_app


class TempoPlugin(AirflowPlugin):
    name = "tempo"
    listeners = [listeners]
    fastapi_apps = [{"name": "Tempo", "app": create_app(), "url_prefix": URL_PREFIX}]
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
            "name": "Start a process",
            "href": f"{URL_PREFIX}/start",
            "destination": "nav",
            "url_route": "tempo-start",
            "category": "browse",
        },
    ]
