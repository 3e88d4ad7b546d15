from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from tempo.config import OPTIONS
from tempo.store.engine import read_session, write_session
from tempo.store.migrate import head_revision
from tempo.store.models import Task, TaskStatus
from tests.conftest import REPO
from tests.factories import make_task

TEMPO = [sys.executable, "-m", "tempo.cli"]


def tempo(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if url:
        env["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = url
    return subprocess.run([*TEMPO, *args], capture_output=True, text=True, env=env, timeout=120)


def test_console_script_is_installed():
    bindir = os.path.dirname(sys.executable)
    result = subprocess.run(
        [os.path.join(bindir, "tempo"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("db", "directory", "templates", "tasks", "config"):
        assert command in result.stdout


def test_db_upgrade_then_current(store_url):
    assert tempo("db", "current", url=store_url).returncode == 1  # empty store is behind head
    result = tempo("db", "upgrade", url=store_url)
    assert result.returncode == 0, result.stderr
    assert f"store at revision {head_revision()}" in result.stdout
    assert tempo("db", "current", url=store_url).returncode == 0


def test_directory_load_reports_and_rejects(store, tmp_path):
    ok = tempo("directory", "load", str(REPO / "include" / "directory.yaml"), url=store)
    assert ok.returncode == 0, ok.stderr
    assert "people" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("people:\n  - {username: zed, name: Zed, email: zed@example.com, manager: nobody}\n")
    result = tempo("directory", "load", str(bad), url=store)
    assert result.returncode == 2
    assert f"{bad}:2: people.0.manager: unknown person 'nobody'" in result.stderr
    assert "Nothing was changed." in result.stderr


def test_tasks_list_and_complete(store):
    with write_session() as session:
        task = make_task(
            session,
            title="Create S/O",
            form_schema={
                "fields": [{"name": "so_number", "type": "text", "pattern": r"SO-\d{6}", "required": True}]
            },
        )

    listing = tempo("tasks", "list", "--json", url=store)
    assert [t["id"] for t in json.loads(listing.stdout)] == [task.id]
    assert "Create S/O" in tempo("tasks", "list", url=store).stdout

    invalid = tempo("tasks", "complete", str(task.id), "--by", "sandra", "--field", "so_number=12", url=store)
    assert invalid.returncode == 2
    assert "so_number:" in invalid.stderr
    with read_session() as session:
        assert session.get_one(Task, task.id).status == TaskStatus.OPEN

    done = tempo(
        "tasks", "complete", str(task.id), "--by", "sandra", "--field", "so_number=SO-123456", url=store
    )
    assert done.returncode == 0, done.stderr
    again = tempo(
        "tasks", "complete", str(task.id), "--by", "helen", "--field", "so_number=SO-999999", url=store
    )
    assert again.returncode == 3
    assert "already completed by sandra" in again.stderr
    with read_session() as session:
        stored = session.scalars(select(Task)).one()
        assert (stored.completed_by, stored.result) == ("sandra", {"so_number": "SO-123456"})
    assert tempo("tasks", "list", "--json", url=store).stdout.strip() == "[]"


def test_tasks_list_aligns_its_columns_whatever_their_width(store):
    with write_session() as session:
        make_task(session, title="Create S/O", candidate_role="customer_service_agents_of_the_north")
        make_task(session, title="Approve the deal", assignee="sandra")
    header, *rows = tempo("tasks", "list", url=store).stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "ASSIGNEE", "DUE", "TITLE"] and len(rows) == 2
    # Each column starts where its heading does, however long the queue's name.
    for row, who, title in zip(
        rows,
        ("@customer_service_agents_of_the_north", "sandra"),
        ("Create S/O", "Approve the deal"),
        strict=True,
    ):
        assert row.index(who) == header.index("ASSIGNEE"), (header, row)
        assert row.index(title) == header.index("TITLE"), (header, row)


@pytest.fixture(scope="module")
def config_listing() -> str:
    listing = tempo("config")
    assert listing.returncode == 0, listing.stderr
    return listing.stdout


@pytest.mark.parametrize("option", [o.key for o in OPTIONS], ids=[o.key for o in OPTIONS])
def test_every_option_is_listed_and_documented(option, config_listing):
    assert option in config_listing
    assert f"`{option}`" in (REPO / "README.md").read_text()
