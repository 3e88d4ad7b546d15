"""Tempo's web view inside Airflow's API server: inbox, task and start forms, process pages, a JSON
API, and the public pages behind emailed links."""

#: Where the plugin mounts the web app in Airflow's API server.
from __future__ import annotations

URL_PREFIX = "/tempo"
