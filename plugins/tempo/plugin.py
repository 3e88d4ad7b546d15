"""The Airflow plugin: Tempo's listeners (and, as they arrive, its web app and views).

Importing this module has no side effects: no tables are created and nothing is connected to.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tempo import listeners


class TempoPlugin(AirflowPlugin):
    name = "tempo"
    listeners = [listeners]
