"""DAG files import Tempo's authoring API only: the dag-processor parses them again and again, and every
task run parses its DAG file before it starts, so the store and the directory stay out of that path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

KEPT_OUT = ("tempo.store.models", "tempo.store.engine", "tempo.directory", "tempo.mail.outbox")
DAG_FILES = [
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "dags").rglob("*.py")),
    "bench/dags/bench_tempo_step.py",
]


# One interpreter imports Airflow's authoring API once, then parses each file in a forked child of
# its own: every file starts from the same modules, and none sees what another file imported.
PARSE_EACH = """
import json, os, runpy, sys, traceback
import airflow.sdk  # noqa: F401
kept_out = sys.argv[1].split(",")
for path in sys.argv[2:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        try:
            runpy.run_path(path)
            outcome = {"loaded": [m for m in kept_out if m in sys.modules]}
        except BaseException:
            outcome = {"error": traceback.format_exc()[-2000:]}
        os.write(write, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    os.wait()
    print(json.dumps({path: json.loads(outcome or '{"error": "the child died"}')}))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, object]]:
    paths = [str(REPO / f) for f in DAG_FILES]
    result = subprocess.run(
        [sys.executable, "-c", PARSE_EACH, ",".join(KEPT_OUT), *paths],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes: dict[str, dict[str, object]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            outcomes.update(json.loads(line))
    return outcomes


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_parsing_a_dag_file_leaves_the_store_unloaded(dag_file, parsed):
    outcome = parsed[str(REPO / dag_file)]
    assert "error" not in outcome, outcome.get("error")
    assert outcome["loaded"] == [], outcome
