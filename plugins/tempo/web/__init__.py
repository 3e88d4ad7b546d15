"""Tempo's web view inside Airflow's API server: inbox, task and start forms, process pages, a JSON
API, and the public pages behind emailed links."""

from __future__ import annotations

#: Where the plugin mounts the web app in Airflow's API server: every Tempo URL starts with it.
URL_PREFIX = "/tempo"
