"""Steps waiting with reminders on a real Airflow: Tempo before and after steps stopped deferring,
and the standard provider's ApprovalOperator, one after another in one invocation.

Each system gets its own Airflow (api-server, scheduler, dag-processor, one triggerer with the
capacity ``--capacity``, by default Airflow's 1,000; LocalExecutor), its own fresh databases and a
mail catcher:

- ``before``: Tempo as of commit ``BEFORE`` (steps defer to ``HumanStepTrigger``; SLA timers run
  inside the trigger on the triggerer). A temporary git worktree of that commit is put first on
  every component's ``PYTHONPATH`` and is the plugins folder, so ``import tempo`` is the old package
  everywhere; its own migrations create its store. Checked before the stack starts.
- ``after``: Tempo of this checkout (steps park in ``awaiting_input``; the clock in the API server
  fires SLA timers).
- ``approval``: ``ApprovalOperator`` (parks in ``awaiting_input``; no reminders).

``--steps`` steps are opened by ``--runs`` runs of a mapped step; every Tempo step has an SLA
reminder ``--remind-after`` seconds after it opens (plain elapsed time), so early reminders fall due
while later steps still open. Once every step waits, the bench watches for ``--remind-after`` +
``--grace`` seconds (the same window for every system: every planned reminder is due inside it) and
measures steps opened per second, trigger rows in Airflow's metadata database, CPU seconds of the
triggerer, scheduler and API server process trees over the window (psutil), and reminders caught by
the mail catcher: delivered, duplicates, lateness (arrival minus task created_at + remind-after).

    python bench/waiting.py [--steps 1500] [--systems before,after,approval] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import email
import email.policy
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.faults import SCALE_ENV  # noqa: E402  (settings that open many steps quickly)
from tempo_dev.devstack import AirflowStack  # noqa: E402

#: Tempo before waiting steps stopped deferring to triggers.
BEFORE = "f27c89a"
SYSTEMS = ("before", "after", "approval")
LABELS = {
    "before": f"Tempo before ({BEFORE}, triggers)",
    "after": "Tempo after (awaiting_input + clock)",
    "approval": "ApprovalOperator",
}
DAGS = {"before": "bench_waiting_steps", "after": "bench_waiting_steps", "approval": "bench_waiting_hitl"}
#: Where a waiting step's task instance is parked.
PARKED = {"before": "deferred", "after": "awaiting_input", "approval": "awaiting_input"}
STEP_ID = "answer"
REMINDER_PREFIXES = ("[Tempo] Reminder: ", "[Tempo] Overdue: ")
MEASURED = ("triggerer", "scheduler", "api-server")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- mail with its arrival time ------------------------------------------------------------------


class TimedCatcher:
    """An SMTP server (aiosmtpd) that keeps each message's subject and arrival time."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self.arrivals.append((str(message["Subject"] or ""), arrived))
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self.arrivals)


def start_catcher() -> tuple[Any, TimedCatcher]:
    from aiosmtpd.controller import Controller

    from tempo_dev.devstack import free_port

    handler = TimedCatcher()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, handler


# --- databases, read with plain SQL (the old store's tables are not this checkout's models) ------


def engine_for(url: str) -> Any:
    from sqlalchemy import create_engine

    if url.startswith("postgresql"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})


def rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def step_states(metadata: Any, dag_id: str) -> collections.Counter[str]:
    found = rows(
        metadata,
        "SELECT state, count(*) FROM task_instance WHERE dag_id = :dag AND task_id = :task GROUP BY state",
        dag=dag_id,
        task=STEP_ID,
    )
    return collections.Counter({str(state): n for state, n in found})


def trigger_rows(metadata: Any) -> tuple[int, int]:
    """(trigger rows, rows assigned to a triggerer) in Airflow's metadata database."""
    total, assigned = rows(metadata, "SELECT count(*), count(triggerer_id) FROM trigger")[0]
    return int(total), int(assigned)


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- CPU of component process trees --------------------------------------------------------------


class CpuSampler:
    """CPU seconds (user + system) of each component's process tree, sampled every ``interval``:
    a process that ends between samples loses at most its last interval."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0) -> None:
        self.pids, self.interval = pids, interval
        self.first: dict[tuple[str, int, float], float] = {}
        self.last: dict[tuple[str, int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = False

    def _sample(self) -> None:
        import psutil

        for name, pid in self.pids.items():
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in tree:
                try:
                    times = process.cpu_times()
                    key = (name, process.pid, process.create_time())
                except psutil.NoSuchProcess:
                    continue
                used = times.user + times.system
                # A process born after the window opened counts from zero.
                self.first.setdefault(key, used if not self._started else 0.0)
                self.last[key] = used

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._started = True
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        used: dict[str, float] = collections.defaultdict(float)
        for key, last in self.last.items():
            used[key[0]] += last - self.first[key]
        return dict(used)


# --- one system ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    system: str
    steps: int
    tempo: str = ""
    open_s: float = 0.0
    window_s: float = 0.0
    triggers_max: int = 0
    triggers_assigned_max: int = 0
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    reminders: int | None = None
    reminded_steps: int | None = None
    duplicates: int | None = None
    late_p50: float | None = None
    late_p95: float | None = None
    late_max: float | None = None
    not_waiting: dict[str, int] = dataclasses.field(default_factory=dict)
    load_start: str = ""
    load_end: str = ""
    #: dag-processor restarts (see ``keep_alive``)
    restarts: int = 0

    @property
    def opened_per_s(self) -> float:
        return self.steps / self.open_s if self.open_s else 0.0


def old_worktree(where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), BEFORE],
        check=True,
        capture_output=True,
    )
    return where


def which_tempo(stack: AirflowStack) -> str:
    """Which ``tempo`` the stack's components import: the package's folder and whether it still has
    the trigger's shared poller (only the old code does)."""
    probe = (
        "import tempo, tempo.steps.trigger as t; "
        "print(tempo.__file__, 'TaskPoller' if hasattr(t, 'TaskPoller') else 'no TaskPoller')"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=stack.env(), capture_output=True, text=True, check=True
    ).stdout.split()
    origin = "this checkout" if Path(out[0]).is_relative_to(REPO / "plugins") else f"worktree of {BEFORE}"
    return f"{origin}, {' '.join(out[1:])}"


def store_revision(store: Any) -> str:
    return ",".join(r[0] for r in rows(store, "SELECT version_num FROM alembic_version_tempo"))


def make_stack(system: str, home: Path, args: argparse.Namespace, smtp_port: int, old: Path | None) -> Any:
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / f"{DAGS[system]}.py").symlink_to(REPO / "bench" / "dags" / f"{DAGS[system]}.py")
    env = {
        **SCALE_ENV,
        "TEMPO_BENCH_REMIND_AFTER": str(args.remind_after),
        "AIRFLOW__TRIGGERER__CAPACITY": str(args.capacity),
    }
    kwargs: dict[str, Any] = {}
    cluster = None
    if system == "before":
        assert old is not None
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(old / "plugins"), os.environ.get("PYTHONPATH", "")) if p
        )
        kwargs["plugins_folder"] = old / "plugins"
    if args.backend == "postgres":
        import psycopg

        from tests.pgcluster import start_cluster

        cluster = start_cluster()
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE airflow")
            conn.execute("CREATE DATABASE tempo")
        kwargs |= {
            "metadata_url": cluster.url("airflow", driver="psycopg2"),
            "store_url": cluster.url("tempo"),
        }
    stack = AirflowStack(
        home=home / "airflow", dags_folder=dags, smtp_port=smtp_port, extra_env=env, **kwargs
    )
    return stack, cluster


def keep_alive(stack: AirflowStack, result: Result) -> None:
    """Restart the dag-processor if it died (on a loaded machine SQLite's lock wait can outlast its
    heartbeat's); any other component dying ends the bench."""
    process = stack.processes.get("dag-processor")
    if process is not None and process.poll() is not None:
        log(f"  dag-processor exited with {process.returncode}; restarting it")
        stack.processes.pop("dag-processor")
        stack.restart("dag-processor")
        result.restarts += 1
    stack._check_alive()


def open_steps(stack: AirflowStack, dag_id: str, steps: int, runs: int) -> list[str]:
    sizes = [steps // runs + (1 if r < steps % runs else 0) for r in range(runs)]
    return [
        stack.trigger(dag_id, {"ref": f"W{r}", "steps": str(size)}) for r, size in enumerate(sizes) if size
    ]


def bench_system(system: str, args: argparse.Namespace, old: Path | None) -> Result:
    home = Path(tempfile.mkdtemp(prefix=f"tempo-bench-waiting-{system}-"))
    controller, mail = start_catcher()
    stack, cluster = make_stack(system, home, args, controller.port, old)
    result = Result(system, args.steps)
    metadata = engine_for(str(stack.metadata_url))
    store = engine_for(str(stack.store_url))
    dag_id, parked = DAGS[system], PARKED[system]
    try:
        stack.prepare()
        result.tempo = which_tempo(stack)
        revision = store_revision(store)
        log(f"{LABELS[system]}: imports tempo from {result.tempo}; store at revision {revision}")
        if (system == "before") != ("worktree" in result.tempo):
            raise SystemExit(f"{system}: the components would import the wrong tempo ({result.tempo})")
        stack.start()
        stack.wait_ready([dag_id])
        log(f"{system}: stack ready, load {load()}; opening {args.steps} steps in {args.runs} runs")

        started = time.monotonic()
        open_steps(stack, dag_id, args.steps, args.runs)
        last_print = 0.0
        while True:
            states = step_states(metadata, dag_id)
            elapsed = time.monotonic() - started
            if states.get(parked, 0) >= args.steps:
                break
            bad = {s: n for s, n in states.items() if s in ("failed", "upstream_failed", "up_for_retry")}
            if elapsed > args.open_timeout:
                raise TimeoutError(
                    f"{system}: only {states.get(parked, 0)} steps {parked} after {elapsed:.0f}s"
                )
            if elapsed - last_print >= 30:
                log(f"  {states.get(parked, 0)} {parked} after {elapsed:.0f}s {bad or ''}, load {load()}")
                last_print = elapsed
            keep_alive(stack, result)
            time.sleep(2)
        result.open_s = time.monotonic() - started
        log(f"{system}: {args.steps} steps {parked} in {result.open_s:.0f}s ({result.opened_per_s:.2f}/s)")

        # The waiting window: the same length for every system, every planned reminder due inside it.
        result.window_s = args.remind_after + args.grace
        result.load_start = load()
        sampler = CpuSampler({name: stack.processes[name].pid for name in MEASURED})
        sampler.start()
        window_end = time.monotonic() + result.window_s
        last_print = 0.0
        while time.monotonic() < window_end:
            total, assigned = trigger_rows(metadata)
            result.triggers_max = max(result.triggers_max, total)
            result.triggers_assigned_max = max(result.triggers_assigned_max, assigned)
            if time.monotonic() - last_print >= 60:
                caught = sum(s.startswith(REMINDER_PREFIXES) for s, _ in mail.snapshot())
                left = window_end - time.monotonic()
                log(
                    f"  waiting: {total} trigger rows ({assigned} assigned), {caught} reminders, "
                    f"{left:.0f}s left, load {load()}"
                )
                last_print = time.monotonic()
            keep_alive(stack, result)
            time.sleep(5)
        result.cpu = sampler.stop()
        result.load_end = load()
        states = step_states(metadata, dag_id)
        result.not_waiting = {s: n for s, n in states.items() if s != parked}
        if system != "approval":
            count_reminders(result, store, mail, args.remind_after)
    finally:
        stack.stop()
        controller.stop()
        metadata.dispose()
        store.dispose()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    return result


def count_reminders(result: Result, store: Any, mail: TimedCatcher, remind_after: float) -> None:
    """Reminders caught per step (by its title, unique per step), their lateness against the plan."""
    created = {title: as_utc(at) for title, at in rows(store, "SELECT title, created_at FROM tempo_task")}
    per_title: dict[str, list[float]] = collections.defaultdict(list)
    for subject, arrived in mail.snapshot():
        for prefix in REMINDER_PREFIXES:
            if subject.startswith(prefix):
                per_title[subject[len(prefix) :]].append(arrived)
    lateness = [
        min(arrivals) - (created[title].timestamp() + remind_after)
        for title, arrivals in per_title.items()
        if title in created
    ]
    result.reminders = sum(len(a) for a in per_title.values())
    result.reminded_steps = len(per_title)
    result.duplicates = sum(len(a) - 1 for a in per_title.values())
    if lateness:
        result.late_p50 = percentile(lateness, 50)
        result.late_p95 = percentile(lateness, 95)
        result.late_max = max(lateness)


# --- the table -----------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}"


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def table(results: list[Result]) -> str:
    by = {r.system: r for r in results}
    metrics: list[tuple[str, Any]] = [
        ("steps opened per second", lambda r: r.opened_per_s),
        ("trigger rows while waiting (max)", lambda r: r.triggers_max),
        ("... of them assigned to the triggerer", lambda r: r.triggers_assigned_max),
        ("triggerer CPU s over the window", lambda r: r.cpu.get("triggerer")),
        ("scheduler CPU s over the window", lambda r: r.cpu.get("scheduler")),
        ("API server CPU s over the window", lambda r: r.cpu.get("api-server")),
        ("steps reminded", lambda r: r.reminded_steps),
        ("reminders delivered", lambda r: r.reminders),
        ("duplicate reminders", lambda r: r.duplicates),
        ("reminder lateness p50 s", lambda r: r.late_p50),
        ("reminder lateness p95 s", lambda r: r.late_p95),
        ("reminder lateness max s", lambda r: r.late_max),
    ]
    systems = [s for s in SYSTEMS if s in by]
    header = ["metric", *(LABELS[s] for s in systems)]
    ratios = []
    if "after" in by and "before" in by:
        ratios.append(("after/before", "after", "before"))
    if "after" in by and "approval" in by:
        ratios.append(("after/ApprovalOperator", "after", "approval"))
    header += [name for name, _, _ in ratios]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, get in metrics:
        values = [get(by[s]) for s in systems]
        cells = [fmt(v, 2 if "per second" in name else 1) for v in values]
        cells += [ratio(get(by[a]), get(by[b])) for _, a, b in ratios]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated bench still cleans up
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--runs", type=int, default=10, help="DAG runs the steps are spread over")
    parser.add_argument("--remind-after", type=float, default=300, help="seconds from a step's opening")
    parser.add_argument("--grace", type=float, default=60, help="seconds watched after the last reminder")
    parser.add_argument(
        "--capacity", type=int, default=1000, help="[triggerer] capacity (Airflow's default: 1000)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--open-timeout", type=float, default=2400)
    args = parser.parse_args()
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}")

    print(f"machine: {platform.platform()}, nproc {os.cpu_count()}, Python {platform.python_version()}")
    print(
        f"{args.steps} steps in {args.runs} runs per system; reminder {args.remind_after:.0f}s after a "
        f"step opens; window {args.remind_after + args.grace:.0f}s once all wait; backend {args.backend}; "
        f"one triggerer (capacity {args.capacity}), scheduler, dag-processor, API server; "
        f"LocalExecutor; {SCALE_ENV}"
    )
    print(f"load average at start: {load()}", flush=True)
    old_dir = Path(tempfile.mkdtemp(prefix="tempo-bench-before-")) / "tree"
    old = old_worktree(old_dir) if "before" in systems else None
    results = []
    try:
        for system in systems:
            result = bench_system(system, args, old)
            results.append(result)
            log(f"{system}: {result}")
    finally:
        if old is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
        shutil.rmtree(old_dir.parent, ignore_errors=True)
    print(f"\nload average at the end: {load()}")
    for result in results:
        print(
            f"{LABELS[result.system]}: tempo {result.tempo or '-'}; window {result.window_s:.0f}s, load "
            f"{result.load_start} -> {result.load_end}; steps not {PARKED[result.system]} at the end: "
            f"{result.not_waiting or 'none'}; dag-processor restarts: {result.restarts}"
        )
    print("\n" + table(results))


if __name__ == "__main__":
    main()
