"""Airflow's real API server app (auth manager, plugin mounting) in-process, with TestClient.

Airflow's metadata database is migrated once per session and the project's DAGs serialized into
it, so the start catalog and the route maps read real serialized DAGs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import REPO

ROLES = {
    "blind": "user",
    "admin": "admin",
    "sandra": "user",
    "rob": "user",
    "helen": "user",
    "john": "user",
    "olga": "user",
    "fiona": "user",
    "vera": "viewer",
    "stranger": "user",
}


@pytest.fixture(scope="session")
def api_app(airflow_metadata):
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


@pytest.fixture
def web(api_app, store) -> Iterator[TestClient]:
    """A client for Airflow's API server with Tempo mounted; the demo directory loaded."""
    from tempo.directory import load_directory_file

    load_directory_file(REPO / "include" / "directory.yaml")
    with TestClient(api_app, base_url="http://tempo.example.test") as client:
        yield client


def token_for(username: str, role: str | None = None) -> str:
    """A JWT for ``username`` with its role in ``ROLES``, or ``role`` for a login not listed there."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=username, role=role or ROLES[username])
    return get_auth_manager().generate_jwt(user)


def auth(username: str, role: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(username, role)}"}
