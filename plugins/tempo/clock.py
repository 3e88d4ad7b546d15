"""The clock: what Tempo must do while nobody acts.

Waiting steps hold nothing in Airflow (they are parked in ``awaiting_input``), so something else
must keep time for them. Every API server process runs the clock in the background for as long as
it serves (``running()``, entered by the plugin's ``ClockLifespan`` middleware). One of them at a
time holds the clock's lease in the store and, each ``[tempo] clock_interval``:

- fires the SLA timers that are due (reminders, overdue marks, escalations, expiry): one indexed
  query on ``tempo_task.sla_next_at`` finds them, however many steps wait;
- moves the tasks of absences that begin or end to the deputy and back (``actions.hand_over_absences``);
- delivers wakes still owed: a task closed in the store whose step was not woken (the API server
  died in between, Airflow's database refused) is found by one indexed query and woken now;
- sends the mail its timers queued at once, and retries undelivered email every ``[tempo]
  outbox_sweep_interval``, whether or not a step waits; once SMTP answers again after an outage,
  the retries waiting for their back-off go out at once.

Each of these is safe to repeat: a timer fires once (``tempo_sla_fired``), a wake resumes a step
once (the task instance row is locked and its state read), a message is sent once per dedup key.
When the holder dies its lease runs out and another API server's clock takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from tempo import config
from tempo.store.engine import read_session, write_session
from tempo.store.models import WAKE_OWED, Lease, Task, utcnow

log = logging.getLogger(__name__)

LEASE_NAME = "clock"
#: Tasks handled per sweep and tick; the rest wait for the next tick.
BATCH = 500
#: A completion wakes its own step within milliseconds; the clock leaves it that long before it
#: counts the wake as owed, so that the two rarely meet on the same row.
WAKE_GRACE = timedelta(seconds=2)


@dataclass
class Tick:
    """What one tick did (for logs and tests)."""

    held: bool = False
    timers_fired_on: int = 0
    woken: int = 0
    handed_over: int = 0


class Clock:
    """One process's clock; ``tick()`` and ``sweep_outbox()`` do nothing unless it holds the lease.

    Mail goes out on a loop of its own (``run``), so that a slow or absent SMTP server never makes
    a timer or a wake late: the tick only queues messages and nudges that loop.
    """

    def __init__(self, holder: str | None = None, interval: float | None = None) -> None:
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.interval = config.clock_interval() if interval is None else interval
        # Long enough to outlast a slow tick, short enough that a dead holder is replaced quickly.
        self.lease = timedelta(seconds=max(30.0, 6 * self.interval))
        self.held = False
        #: Called (from the tick's thread) when a tick queued mail: ``run`` makes it wake the outbox
        #: loop, which then sends without waiting for its interval.
        self.mail_queued: Callable[[], None] = lambda: None

    def tick(self, now: datetime | None = None) -> Tick:
        now = now or utcnow()
        self.held = self.hold_lease(now)
        tick = Tick(held=self.held)
        if not tick.held:
            return tick
        tick.handed_over = self.hand_over_absences(now)
        tick.timers_fired_on = self.fire_due_timers(now)
        tick.woken = self.deliver_owed_wakes(now)
        return tick

    def sweep_outbox(self) -> int:
        """Send the messages that are due; once SMTP answers again, the waiting retries too. The
        number sent."""
        from tempo.mail.outbox import deliver_pending, retries_waiting, retry_now, smtp_reachable

        if not self.held:
            return 0
        # Retries back off up to an hour apart; when SMTP is back they need not wait that long.
        if retries_waiting() and smtp_reachable():
            log.info("[tempo] SMTP answers again: %d message(s) retried now", retry_now())
        return deliver_pending().sent

    def hold_lease(self, now: datetime) -> bool:
        """Take or renew the lease: ours if we hold it or nobody's has run out; one compare-and-set."""
        until = now + self.lease
        with write_session() as session:
            renewed = session.execute(
                update(Lease)
                .where(Lease.name == LEASE_NAME, (Lease.holder == self.holder) | (Lease.expires_at < now))
                .values(holder=self.holder, expires_at=until)
            )
            if renewed.rowcount == 1:  # type: ignore[attr-defined]
                return True
            if session.get(Lease, LEASE_NAME) is not None:
                return False
            try:
                with session.begin_nested():
                    session.add(Lease(name=LEASE_NAME, holder=self.holder, expires_at=until))
            except IntegrityError:
                return False  # another clock created it first
            return True

    def release_lease(self) -> None:
        """Let another clock take over at once (a clean shutdown)."""
        with write_session() as session:
            session.execute(
                update(Lease)
                .where(Lease.name == LEASE_NAME, Lease.holder == self.holder)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    def hand_over_absences(self, now: datetime) -> int:
        """Move the tasks of absences that began or ended; the number of tasks moved."""
        from tempo.actions import hand_over_absences

        try:
            return hand_over_absences(now)
        except Exception:  # an absence's trouble must not stop the timers and the wakes
            log.exception("[tempo] absences' hand-overs failed; retrying next tick")
            return 0

    def fire_due_timers(self, now: datetime) -> int:
        """Fire what is due on every task whose next timer has come; the number of tasks."""
        from tempo import sla_timers
        from tempo.steps.resume import wake_step

        with read_session() as session:
            due = session.scalars(
                select(Task.id)
                .where(Task.sla_next_at.is_not(None), Task.sla_next_at <= now)
                .order_by(Task.sla_next_at)
                .limit(BATCH)
            ).all()
        for task_pk in due:
            try:
                fired = sla_timers.fire_due(task_pk, now)
                if fired.outbox_keys:
                    self.mail_queued()
                if fired.closed_task is not None:
                    wake_step(fired.closed_task)
            except Exception:  # one task's trouble must not stop the others' timers
                log.exception("[tempo] SLA timers of task %s failed; retrying next tick", task_pk)
        return len(due)

    def deliver_owed_wakes(self, now: datetime) -> int:
        """Wake the steps of tasks closed without a wake; the number woken."""
        from tempo.steps.resume import Wake, wake_step

        with read_session() as session:
            owed = session.scalars(
                select(Task)
                .where(text(WAKE_OWED), Task.completed_at < now - WAKE_GRACE)
                .order_by(Task.completed_at)
                .limit(BATCH)
            ).all()
        woken = 0
        for task in owed:
            if wake_step(task) is Wake.WOKEN:
                log.info("[tempo] woke step %s of %s (its wake was owed)", task.task_id, task.run_id)
                woken += 1
        return woken

    async def run(self) -> None:
        """Tick every ``interval`` and sweep the outbox every ``[tempo] outbox_sweep_interval`` (or
        as soon as a tick queued mail) until cancelled; blocking work runs in threads."""
        log.info("[tempo] clock %s ticking every %.1fs", self.holder, self.interval)
        loop = asyncio.get_running_loop()
        nudged = asyncio.Event()

        def nudge() -> None:
            loop.call_soon_threadsafe(nudged.set)

        self.mail_queued = nudge
        try:
            await asyncio.gather(self._ticking(), self._mailing(nudged))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.release_lease)

    async def _ticking(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # the store unreachable for a moment: try again next tick
                log.exception("[tempo] clock tick failed; retrying")
            await asyncio.sleep(self.interval)

    async def _mailing(self, nudged: asyncio.Event) -> None:
        while True:
            nudged.clear()
            try:
                await asyncio.to_thread(self.sweep_outbox)
            except Exception:
                log.exception("[tempo] outbox sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(nudged.wait(), config.outbox_sweep_interval())


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[None]:
    """Run the clock in the background of the enclosed block (an API server process's lifespan)."""
    interval = config.clock_interval()
    if interval <= 0:
        yield
        return
    running = asyncio.get_running_loop().create_task(Clock(interval=interval).run(), name="tempo-clock")
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
