"""DAG files import Tempo's authoring API only: the dag-processor parses them again and again, and every
task run parses its DAG file before it starts, so the store and the directory stay out of that path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

KEPT_OUT = ("tempo.store.models", "tempo.store.engine", "tempo.directory", "tempo.mail.outbox")
DAG_FILES = [
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "dags").rglob("*.py")),
    "bench/dags/bench_tempo_step.py",
]


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_parsing_a_dag_file_leaves_the_store_unloaded(dag_file):
    path = REPO / dag_file
    script = (
        "import runpy, sys\n"
        f"runpy.run_path({str(path)!r})\n"
        f"print(','.join(m for m in {KEPT_OUT!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1:] in ([], [""]), result.stdout
