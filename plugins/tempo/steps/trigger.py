"""The trigger a waiting human step defers to, and the one poller all of them share.

Thousands of steps may wait at once. Each ``HumanStepTrigger`` only registers its task id with the
``TaskPoller`` of its event loop and awaits a future; the poller asks the store about *every*
waiting task in one query per tick, so the query rate does not grow with the number of waiting
steps. On PostgreSQL the poller also LISTENs on ``tempo_task_closed`` and ticks at once when a task
is closed; polling stays as the fallback if the notification connection drops.

Besides the completion, a trigger waits for its task's SLA timers (reminders, escalations, expiry).
Firing one writes to the store and the outbox; ``tempo.sla_timers.fire`` makes that happen once per
timer, so when Airflow runs the same trigger twice both fire the same event and no email doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

from airflow.triggers.base import BaseTrigger, TriggerEvent
from sqlalchemy import Integer, any_, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url

from tempo.store.models import CLOSED_TASK_STATUSES, Task
from tempo.store.tasks import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

TRIGGER_CLASSPATH = "tempo.steps.trigger.HumanStepTrigger"


class StepAnswer(TypedDict):
    """What the person answered: the step's XCom, carried in the event so the resumed step needs no
    store round trip."""

    form: dict[str, Any]
    outcome: str | None
    completed_by: str | None
    completed_at: str | None
    task: int


class StepClosedEvent(TypedDict):
    """The task left the inboxes: completed, rejected, cancelled or expired."""

    status: Literal["closed"]
    task_pk: int
    task_status: str
    version: int
    #: Set for completed and rejected tasks.
    answer: StepAnswer | None


class StepErrorEvent(TypedDict):
    status: Literal["error"]
    task_pk: int
    error_type: Literal["task_missing"]
    message: str


StepEvent = StepClosedEvent | StepErrorEvent


class _Closed(TypedDict):
    status: str
    version: int
    answer: StepAnswer | None


def answer_of(task: Any) -> StepAnswer | None:
    """The answer of a closed task row (or row-like result), None unless completed or rejected."""
    if str(getattr(task.status, "value", task.status)) not in ("completed", "rejected"):
        return None
    return {
        "form": task.result or {},
        "outcome": task.outcome,
        "completed_by": task.completed_by,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "task": task.id,
    }


class TaskPoller:
    """Watches the store for the closing of any registered task; one per event loop."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self._waiters: dict[int, list[asyncio.Future[_Closed | None]]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        #: Store queries made, for tests and benchmarks that check the rate stays flat.
        self.queries = 0
        self._last_sweep = float("-inf")

    async def wait(self, task_pk: int) -> _Closed | None:
        """Until task ``task_pk`` is closed; ``None`` if it does not exist."""
        future: asyncio.Future[_Closed | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_pk, []).append(future)
        self._ensure_running()
        self._wake.set()  # check the new waiter now rather than at the next tick
        try:
            return await future
        finally:
            waiters = self._waiters.get(task_pk)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters:
                    self._waiters.pop(task_pk, None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _ensure_running(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="tempo-task-poller")
        if self._listen_task is None and make_url(self.url).get_backend_name() == "postgresql":
            self._listen_task = asyncio.get_running_loop().create_task(
                self._listen(), name="tempo-task-listen"
            )

    async def _run(self) -> None:
        while self._waiters:
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # store unreachable for a moment: keep waiting, try next tick
                log.exception("[tempo] task poller query failed; retrying")
            await self._maybe_sweep_outbox()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
        self._loop_task = None

    async def _tick(self) -> None:
        from tempo.store.engine import get_async_engine

        ids = list(self._waiters)
        if not ids:
            return
        engine = get_async_engine(self.url)
        if engine.dialect.name == "postgresql":
            id_filter = Task.id == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
        else:
            # One bound JSON array instead of one parameter per id: the statement is the same size
            # whether 10 or 10,000 steps wait.
            id_filter = Task.id.in_(
                select(column("value")).select_from(func.json_each(bindparam("ids", json.dumps(ids))))
            )
        # Rows for every waiting id: closed ones resolve their waiters, missing ones resolve to None.
        # Open tasks have NULL answers, so carrying the answer columns costs little.
        query = select(
            Task.id,
            Task.status,
            Task.version,
            Task.result,
            Task.outcome,
            Task.completed_by,
            Task.completed_at,
        ).where(id_filter)
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        self.queries += 1
        found = {row.id for row in rows}
        for row in rows:
            if row.status in CLOSED_TASK_STATUSES:
                closed: _Closed = {
                    "status": str(row.status.value),
                    "version": row.version,
                    "answer": answer_of(row),
                }
                self._resolve(row.id, closed)
        for missing in set(ids) - found:
            self._resolve(missing, None)

    async def _maybe_sweep_outbox(self) -> None:
        """Retry undelivered email now and then: the triggerer is the one long-lived Tempo process."""
        from tempo import config
        from tempo.mail.outbox import deliver_pending

        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sweep < config.outbox_sweep_interval():
            return
        self._last_sweep = loop.time()
        try:
            await asyncio.to_thread(deliver_pending, self.url)
        except Exception:
            log.exception("[tempo] outbox sweep failed; retrying later")

    def _resolve(self, task_pk: int, value: _Closed | None) -> None:
        for future in self._waiters.pop(task_pk, []):
            if not future.done():
                future.set_result(value)

    async def _listen(self) -> None:
        """Tick at once on NOTIFY; on any connection trouble fall back to polling and retry later."""
        import psycopg

        conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            while self._waiters:
                try:
                    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                        self._wake.set()  # anything closed before LISTEN started is caught by this tick
                        while self._waiters:
                            async for _ in conn.notifies(timeout=30):
                                self._wake.set()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "[tempo] LISTEN %s failed (%s); polling every %.1fs",
                        NOTIFY_CHANNEL,
                        exc,
                        self.interval,
                    )
                    await asyncio.sleep(min(30.0, max(self.interval, 1.0) * 5))
        finally:
            self._listen_task = None


# Keyed by the loop object itself (weakly): an id() could be reused by a later loop.
_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TaskPoller]] = (
    weakref.WeakKeyDictionary()
)


def poller_for(url: str, interval: float) -> TaskPoller:
    """The poller of the running event loop for this store (one per triggerer process)."""
    per_loop = _pollers.setdefault(asyncio.get_running_loop(), {})
    poller = per_loop.get(url)
    if poller is None:
        poller = per_loop[url] = TaskPoller(url, interval)
    return poller


class HumanStepTrigger(BaseTrigger):
    """Fires when the human task ``task_pk`` is closed.

    Its kwargs are persisted in Airflow's database while the step waits, so they are a schema:
    ``task_pk`` (int), ``poll_interval`` (float seconds, or None for ``[tempo] poll_interval``) and
    ``has_sla`` (bool; triggers stored before it existed default to True, the safe side).
    Connection details are never among them; the triggerer reads ``[tempo]`` itself.
    """

    def __init__(
        self, task_pk: int, poll_interval: float | None = None, has_sla: bool = True, **_retired: Any
    ) -> None:
        # ``**_retired`` lets triggers persisted by an older Tempo, with kwargs since dropped, still load.
        super().__init__()
        self.task_pk = int(task_pk)
        self.poll_interval = poll_interval
        # Without an SLA there is no schedule to read: thousands of waiting steps then cost the
        # store nothing but the poller's one query per tick.
        self.has_sla = bool(has_sla)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_CLASSPATH, {
            "task_pk": self.task_pk,
            "poll_interval": self.poll_interval,
            "has_sla": self.has_sla,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from tempo import config

        poller = poller_for(config.store_url(), self.poll_interval or config.poll_interval())
        waiting = asyncio.ensure_future(poller.wait(self.task_pk))
        try:
            if self.has_sla:
                await self._run_sla_timers(waiting)
            closed = await waiting
        finally:
            if not waiting.done():
                waiting.cancel()
        if closed is None:
            error: StepErrorEvent = {
                "status": "error",
                "task_pk": self.task_pk,
                "error_type": "task_missing",
                "message": f"Tempo task {self.task_pk} is not in the store (was the store reset?)",
            }
            yield TriggerEvent(error)
            return
        event: StepClosedEvent = {
            "status": "closed",
            "task_pk": self.task_pk,
            "task_status": closed["status"],
            "version": closed["version"],
            "answer": closed["answer"],
        }
        yield TriggerEvent(event)

    async def _run_sla_timers(self, waiting: asyncio.Future[Any]) -> None:
        """Fire the task's SLA timers in order until the task closes.

        The schedule is read from the store on every start, so timers due while no triggerer ran
        fire as soon as one runs again; ``sla_timers.fire`` makes each fire once whoever runs it.
        """
        from tempo import sla_timers
        from tempo.mail.outbox import deliver_pending
        from tempo.store.models import utcnow

        try:
            schedule = await asyncio.to_thread(sla_timers.pending, self.task_pk)
        except Exception:
            log.exception("[tempo] could not read the SLA of task %s; waiting without timers", self.task_pk)
            return
        for at, name in schedule:
            delay = (at - utcnow()).total_seconds()
            if delay > 0:
                await asyncio.wait({waiting}, timeout=delay)
            if waiting.done():
                return
            try:
                keys = await asyncio.to_thread(sla_timers.fire, self.task_pk, name)
                if keys:
                    await asyncio.to_thread(deliver_pending, keys=keys)
            except Exception:  # the outbox sweeper retries mail; a failed timer is retried on restart
                log.exception("[tempo] SLA timer %s of task %s failed", name, self.task_pk)
