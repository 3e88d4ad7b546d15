"""Pictures of every shipped process's route map for the README: ``make route-maps``.

Starts Tempo's stack on loopback (as the end-to-end tests do: Airflow's components, the demo
directory, a local mail catcher), starts each process of ``dags/`` with its example start form
(``EXAMPLE_STARTS`` and ``SHIPPED_STARTS`` of the end-to-end tests), waits for its first human step,
and photographs the route map of its process page with chromium: ``docs/img/route-<dag_id>.png``.
A process added to ``dags/`` gets its picture as soon as the end-to-end tests know how to start it.

    python -m tests.e2e.shoot_route_maps [--only DAG_ID ...] [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def starts() -> dict[str, dict]:
    from tests.e2e.test_example_dags import EXAMPLE_STARTS
    from tests.e2e.test_shipped_templates import SHIPPED_STARTS

    return {**EXAMPLE_STARTS, **SHIPPED_STARTS}


def first_step_or_end(stack, dag_id: str, run_id: str):
    """The run's process row once a human step waits (or the run ended), else None."""
    from sqlalchemy import select

    from tempo.store.engine import read_session
    from tempo.store.models import ACTIVE_TASK_STATUSES, Process, Task

    with read_session() as session:
        process = session.scalar(select(Process).where(Process.dag_id == dag_id, Process.run_id == run_id))
        waiting = session.scalar(
            select(Task.id).where(Task.run_id == run_id, Task.status.in_(list(ACTIVE_TASK_STATUSES)))
        )
    if process is not None and (waiting or stack.run_state(dag_id, run_id) in ("success", "failed")):
        return process
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="DAG ids to photograph (default: every process in dags/)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from tempo_dev import mailcatcher
    from tempo_dev.devstack import AirflowStack, wait_until
    from tests.e2e.conftest import dag_ids_in

    known = starts()
    dag_ids = args.only or dag_ids_in(REPO / "dags")
    missing = [d for d in dag_ids if d not in known]
    for dag_id in missing:
        print(f"[tempo] {dag_id}: no example start form in the end-to-end tests; skipped", file=sys.stderr)
    dag_ids = [d for d in dag_ids if d in known]
    chromium = shutil.which("chromium")
    if chromium is None:
        print("[tempo] chromium is required (make system-deps installs it)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    home = Path(tempfile.mkdtemp(prefix="tempo-route-maps-"))
    controller, _ = mailcatcher.start()
    stack = AirflowStack(
        home=home,
        dags_folder=REPO / "dags",
        smtp_port=controller.port,
        extra_env={"AIRFLOW__TEMPO__CLOCK_INTERVAL": "1"},
    )
    try:
        stack.prepare()
        # This process reads the components' store to find each run's process page.
        os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = str(stack.store_url)
        stack.start()
        stack.wait_ready(dag_ids)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
            context.add_cookies([{"name": "_token", "value": stack.token("admin"), "url": stack.base_url}])
            page = context.new_page()
            for dag_id in dag_ids:
                run_id = stack.trigger(dag_id, known[dag_id], user="rob")
                process = wait_until(
                    lambda dag_id=dag_id, run_id=run_id: first_step_or_end(stack, dag_id, run_id),
                    timeout=240,
                    what=f"the first step of {dag_id}",
                )
                page.goto(f"{stack.base_url}/tempo/processes/{process.id}")
                target = args.out / f"route-{dag_id}.png"
                page.locator(".routemap").screenshot(path=str(target))
                print(f"[tempo] {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
            browser.close()
    finally:
        stack.stop()
        controller.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
