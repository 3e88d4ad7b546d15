"""Fault injection: SIGKILL an Airflow component while many steps wait, and count what survives.

Real Airflow 3.3 components on one throwaway PostgreSQL (Airflow's metadata and Tempo's store),
LocalExecutor, scaled out the way production runs: two triggerers and two API servers. One run of
``bench_many_steps`` opens ``--steps`` human steps (a mapped ``HumanStep``). Then, for each component:

1. SIGKILL it (for ``triggerer``: every triggerer, so none is left);
2. while it is down, complete half of the waiting steps the way people do: through the web API of
   a live API server (``POST /tempo/api/v1/tasks/{id}/complete``, which wakes the step at once),
   and one in five straight in the store without waking, as if the wake had failed, so that only
   the clock (in whichever API server holds its lease) can notice it;
3. start it again and wait until every completed step has resumed.

Counted per component: steps waiting, completed while down, resumed with the right answer (the
step's XCom carries the submitted form and the task id), still waiting (must be the other half),
lost (completed but not resumed), resumed with a wrong answer, steps that ran more than once
(try_number > 1: a retry, legitimate for the fast-resume race but reported), assignment emails
sent more than once, completions recorded more than once, and the time from restart until every
completed step had resumed. The remaining steps are then waiting for the next component.

    python bench/faults.py [--steps 1000] [--components triggerer,scheduler,api-server] [--runs 4]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tempo_dev.devstack import AirflowStack, wait_until  # noqa: E402

DAG_ID = "bench_many_steps"
STEP_ID = "answer"
BENCH_DAGS = REPO / "bench" / "dags"
#: Settings that let one LocalExecutor open many steps quickly (see bench/RESULTS.md).
SCALE_ENV = {
    "AIRFLOW__CORE__PARALLELISM": "16",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1024",
    "AIRFLOW__CORE__MAX_MAP_LENGTH": "5000",
    "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
    "AIRFLOW__TEMPO__OUTBOX_SWEEP_INTERVAL": "2",
}
#: One completion in this many is written to the store without waking the step.
STORE_ONLY_EVERY = 5


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the Airflow side, read straight from its metadata database ----------------------------------


def airflow_db(stack: AirflowStack) -> str:
    """libpq URL of the stack's Airflow metadata database."""
    return "postgresql://" + str(stack.metadata_url).split("://", 1)[1]


def step_instances(stack: AirflowStack, run_ids: list[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """(run_id, map_index) -> (state, try_number) of every mapped step instance of the runs."""
    import psycopg

    with psycopg.connect(airflow_db(stack)) as conn:
        rows = conn.execute(
            "SELECT run_id, map_index, state, try_number FROM task_instance "
            "WHERE dag_id = %s AND task_id = %s AND run_id = ANY(%s)",
            (DAG_ID, STEP_ID, run_ids),
        ).fetchall()
    return {(run_id, index): (state or "none", tries) for run_id, index, state, tries in rows}


def step_answers(stack: AirflowStack, run_ids: list[str]) -> dict[tuple[str, int], Any]:
    """(run_id, map_index) -> the XCom each resumed step returned."""
    import psycopg

    with psycopg.connect(airflow_db(stack)) as conn:
        rows = conn.execute(
            "SELECT run_id, map_index, value FROM xcom "
            "WHERE dag_id = %s AND task_id = %s AND key = 'return_value' AND run_id = ANY(%s)",
            (DAG_ID, STEP_ID, run_ids),
        ).fetchall()
    return {(run_id, index): (json.loads(v) if isinstance(v, str) else v) for run_id, index, v in rows}


# --- the Tempo side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    task_pk: int
    run_id: str
    map_index: int
    title: str


def open_steps(stack: AirflowStack, ref: str, steps: int, runs: int) -> list[str]:
    """Start ``runs`` runs that together open ``steps`` human steps; return their run ids."""
    sizes = [steps // runs + (1 if r < steps % runs else 0) for r in range(runs)]
    return [
        stack.trigger(DAG_ID, {"ref": f"{ref}-{r}", "steps": str(size)}, user="rob")
        for r, size in enumerate(sizes)
        if size
    ]


def waiting_steps(stack: AirflowStack, run_ids: list[str]) -> list[Step]:
    """Steps that are open in Tempo and awaiting input in Airflow."""
    from sqlalchemy import select

    from tempo.store.engine import read_session
    from tempo.store.models import Task, TaskStatus

    instances = step_instances(stack, run_ids)
    with read_session() as session:
        tasks = session.execute(
            select(Task.id, Task.run_id, Task.map_index, Task.title).where(
                Task.dag_id == DAG_ID, Task.run_id.in_(run_ids), Task.status == TaskStatus.OPEN
            )
        ).all()
    return sorted(
        (
            Step(pk, run_id, index, title)
            for pk, run_id, index, title in tasks
            if instances.get((run_id, index), ("",))[0] == "awaiting_input"
        ),
        key=lambda s: s.task_pk,
    )


def wait_for_waiting(stack: AirflowStack, run_ids: list[str], count: int, timeout: float) -> list[Step]:
    """Until ``count`` steps wait; print progress (steps per second) as they open."""
    started = time.monotonic()
    last_print = 0.0
    already = len(waiting_steps(stack, run_ids))
    while True:
        steps = waiting_steps(stack, run_ids)
        elapsed = time.monotonic() - started
        if len(steps) >= count:
            opened = len(steps) - already
            log(f"{len(steps)} steps waiting; {opened} opened in {elapsed:.0f}s ({opened / elapsed:.1f}/s)")
            return steps
        if elapsed > timeout:
            raise TimeoutError(f"only {len(steps)} of {count} steps waiting after {elapsed:.0f}s")
        if elapsed - last_print >= 30:
            log(f"  {len(steps)} waiting after {elapsed:.0f}s, load {os.getloadavg()[0]:.1f}")
            last_print = elapsed
        stack._check_alive()
        time.sleep(2)


def answer_for(step: Step) -> str:
    return f"ANS-{step.task_pk}"


def store_only(number: int) -> bool:
    """Whether the ``number``-th completion skips the wake (one in STORE_ONLY_EVERY)."""
    return number % STORE_ONLY_EVERY == STORE_ONLY_EVERY - 1


def complete_steps(stack: AirflowStack, steps: list[Step], server: str, workers: int = 8) -> dict[str, int]:
    """Complete ``steps`` as sandra: through ``server``'s web API, one in five only in the store."""
    from tempo.actions import complete

    token = stack.token("sandra", server=server)
    base_url = stack.api_servers[server]

    def one(numbered: tuple[int, Step]) -> str:
        import httpx

        number, step = numbered
        if store_only(number):
            complete(step.task_pk, actor="sandra", answers={"answer": answer_for(step)}, wake=False)
            return "store only"
        response = httpx.post(
            f"{base_url}/tempo/api/v1/tasks/{step.task_pk}/complete",
            json={"answers": {"answer": answer_for(step)}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        return f"web {response.status_code}"

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(collections.Counter(pool.map(one, enumerate(steps))))


# --- one fault ------------------------------------------------------------------------------------


@dataclass
class FaultResult:
    component: str
    waiting: int
    completed: int
    completions: dict[str, int] = field(default_factory=dict)
    resumed: int = 0
    wrong_answer: int = 0
    still_waiting: int = 0
    lost: int = 0
    woken_without_answer: int = 0
    retried: int = 0
    max_tries: int = 0
    resumed_while_down: int = 0
    duplicate_emails: int = 0
    duplicate_completions: int = 0
    down_s: float = 0.0
    recover_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.resumed == self.completed
            and self.still_waiting == self.waiting - self.completed
            and not (self.lost or self.wrong_answer or self.woken_without_answer)
            and not (self.duplicate_emails or self.duplicate_completions)
        )

    def row(self) -> str:
        return (
            f"| {self.component} | {self.waiting} | {self.completed} | {self.resumed_while_down} "
            f"| {self.resumed} | {self.still_waiting} | {self.lost} | {self.wrong_answer} "
            f"| {self.retried} (max try {self.max_tries}) | {self.duplicate_emails} "
            f"| {self.duplicate_completions} | {self.down_s:.0f} | {self.recover_s:.0f} |"
        )


HEADER = (
    "| killed | waiting | completed while down | resumed while down | resumed right | still waiting "
    "| lost | wrong answer | ran again (retry) | emails twice | completions twice | down s "
    "| restart -> all resumed s |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def component_names(stack: AirflowStack, component: str) -> list[str]:
    """The processes a fault kills: every triggerer, the scheduler, or the first API server."""
    if component == "triggerer":
        return [name for name in stack.processes if name.startswith("triggerer")]
    return [component]


def inject_fault(
    stack: AirflowStack,
    component: str,
    steps: list[Step],
    complete_count: int,
    mail: Any,
    down_for: float = 20,
    timeout: float = 1800,
) -> FaultResult:
    """Kill ``component``, complete ``complete_count`` of ``steps`` while it is down (and keep it
    down at least ``down_for`` seconds), restart it, and count what resumed. ``steps`` must all be
    waiting."""
    import signal

    run_ids = sorted({s.run_id for s in steps})
    chosen, others = steps[:complete_count], steps[complete_count:]
    result = FaultResult(component, waiting=len(steps), completed=len(chosen))
    names = component_names(stack, component)
    live_server = next(name for name in stack.api_servers if name not in names)

    killed_at = time.monotonic()
    for name in names:
        stack.kill(name, signal.SIGKILL)
    log(f"killed {', '.join(names)}; completing {len(chosen)} steps through {live_server}")
    result.completions = complete_steps(stack, chosen, live_server)
    log(f"  completions: {result.completions}")
    if component == "triggerer":
        # No triggerer at all, and none needed: the API server wakes the steps it completes, and
        # the clock delivers the wakes of the completions made only in the store.
        every = {(s.run_id, s.map_index) for s in chosen}
        wait_until(
            lambda: all(step_instances(stack, run_ids).get(k, ("",))[0] == "success" for k in every),
            timeout=timeout,
            interval=1,
            what="the completed steps to resume without a triggerer",
        )
    time.sleep(max(0.0, down_for - (time.monotonic() - killed_at)))
    while_down = step_instances(stack, run_ids)
    result.resumed_while_down = sum(
        while_down.get((s.run_id, s.map_index), ("",))[0] == "success" for s in chosen
    )
    for name in names:
        stack.restart(name)
    restarted_at = time.monotonic()
    result.down_s = restarted_at - killed_at
    if component == "api-server":
        stack.wait_api_server(names[0])

    chosen_keys = {(s.run_id, s.map_index) for s in chosen}

    def resumed() -> bool:
        stack._check_alive()
        instances = step_instances(stack, run_ids)
        done = sum(instances.get(key, ("",))[0] in ("success", "failed") for key in chosen_keys)
        return done == len(chosen_keys)

    try:
        wait_until(resumed, timeout=timeout, interval=1, what="every completed step to resume")
    except TimeoutError:
        log("  not every completed step resumed in time")
    result.recover_s = time.monotonic() - restarted_at
    _count(stack, result, chosen, others, run_ids, mail)
    return result


def _count(
    stack: AirflowStack,
    result: FaultResult,
    chosen: list[Step],
    others: list[Step],
    run_ids: list[str],
    mail: Any,
) -> None:
    from sqlalchemy import func, select

    from tempo.store.engine import read_session
    from tempo.store.models import HistoryEvent

    instances = step_instances(stack, run_ids)
    answers = step_answers(stack, run_ids)
    for step in chosen:
        key = (step.run_id, step.map_index)
        state, tries = instances.get(key, ("none", 0))
        answer = answers.get(key)
        if state != "success":
            result.lost += 1
        elif (answer or {}).get("task") != step.task_pk or (answer or {}).get("form", {}).get(
            "answer"
        ) != answer_for(step):
            result.wrong_answer += 1
        else:
            result.resumed += 1
        if tries > 1:
            result.retried += 1
        result.max_tries = max(result.max_tries, tries)
    for step in others:
        state, tries = instances.get((step.run_id, step.map_index), ("none", 0))
        if state == "awaiting_input":
            result.still_waiting += 1
        else:
            result.woken_without_answer += 1
        if tries > 1:
            result.retried += 1
    subjects = collections.Counter(m.subject for m in list(mail.messages))
    result.duplicate_emails = sum(subjects[f"[Tempo] To do: {s.title}"] > 1 for s in [*chosen, *others])
    with read_session() as session:
        counts = session.execute(
            select(HistoryEvent.task_id, func.count())
            .where(HistoryEvent.task_id.in_([s.task_pk for s in chosen]), HistoryEvent.kind == "completed")
            .group_by(HistoryEvent.task_id)
        ).all()
    result.duplicate_completions = sum(n > 1 for _, n in counts)


# --- the stack -----------------------------------------------------------------------------------


def scaled_out_stack(
    home: Path,
    metadata_url: str,
    store_url: str,
    smtp_port: int,
    dags_folder: Path,
    extra_env: dict[str, str],
) -> AirflowStack:
    """Scheduler, dag-processor, two triggerers and two API servers on one PostgreSQL, started."""
    stack = AirflowStack(
        home=home,
        dags_folder=dags_folder,
        smtp_port=smtp_port,
        metadata_url=metadata_url,
        store_url=store_url,
        extra_env=extra_env,
    )
    stack.prepare()
    stack.start()
    stack.add_triggerer("triggerer-2")
    stack.add_api_server("api-server-2")
    return stack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000, help="steps waiting when a component is killed")
    parser.add_argument("--components", default="triggerer,scheduler,api-server")
    parser.add_argument("--runs", type=int, default=4, help="DAG runs the steps are spread over")
    parser.add_argument("--parallelism", default=SCALE_ENV["AIRFLOW__CORE__PARALLELISM"])
    parser.add_argument("--open-timeout", type=float, default=3600)
    parser.add_argument("--down", type=float, default=20, help="seconds a killed component stays down")
    args = parser.parse_args()

    import logging

    from tempo_dev import mailcatcher
    from tests.pgcluster import start_cluster

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    logging.getLogger("tempo_dev.mailcatcher").setLevel(logging.WARNING)

    home = Path(tempfile.mkdtemp(prefix="tempo-bench-faults-"))
    cluster = start_cluster()
    controller, mail = mailcatcher.start()
    import psycopg

    with psycopg.connect(cluster.url().replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE airflow_bench")
        conn.execute("CREATE DATABASE tempo_bench")
    store_url = cluster.url("tempo_bench")
    os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = store_url
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / "bench_many_steps.py").symlink_to(BENCH_DAGS / "bench_many_steps.py")
    env = {**SCALE_ENV, "AIRFLOW__CORE__PARALLELISM": args.parallelism}
    stack = scaled_out_stack(
        home / "airflow",
        cluster.url("airflow_bench", driver="psycopg2"),
        store_url,
        controller.port,
        dags,
        env,
    )
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"topology: scheduler, dag-processor, 2 triggerers, 2 API servers, LocalExecutor; {env}")
    results: list[FaultResult] = []
    try:
        stack.wait_ready([DAG_ID])
        stack.wait_api_server("api-server-2")
        run_ids: list[str] = []
        components = args.components.split(",")
        for number, component in enumerate(components):
            # Top up to --steps waiting: a fault leaves the uncompleted half waiting for the next one.
            current = waiting_steps(stack, run_ids) if run_ids else []
            missing = args.steps - len(current)
            if missing > 0:
                log(f"opening {missing} more steps (load {os.getloadavg()[0]:.1f})")
                run_ids += open_steps(stack, f"F{number}", missing, max(1, min(args.runs, missing)))
                current = wait_for_waiting(stack, run_ids, args.steps, args.open_timeout)
            steps = current[: args.steps]
            log(f"{component}: {len(steps)} steps waiting, load {os.getloadavg()[0]:.1f}")
            result = inject_fault(stack, component, steps, len(steps) // 2, mail, down_for=args.down)
            results.append(result)
            print(HEADER if number == 0 else "", end="\n" if number == 0 else "")
            print(result.row(), "ok" if result.ok else "NOT OK", flush=True)
        print(f"\nload average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("\n" + HEADER)
        for result in results:
            print(result.row())
    finally:
        stack.stop()
        controller.stop()
        from tempo.store.engine import dispose_all

        dispose_all()
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    if not all(r.ok for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
