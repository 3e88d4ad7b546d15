"""Airflow's SimpleAuthManager, except that the user "blind" may not read any DAG's human tasks.

SimpleAuthManager lets every role read, so a real "read denied" answer needs an auth manager that
can say no; this one does, through the same ``is_authorized_dag`` call Tempo makes.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class RestrictedSimpleAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if user.get_name() == "blind":
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
