from __future__ import annotations

import asyncio
import importlib

import pytest

from tempo.steps.trigger import HumanStepTrigger, poller_for
from tempo.store.engine import dispose_async, write_session
from tempo.store.tasks import complete_task
from tests.factories import make_process, make_task


def _make_tasks(n: int) -> list[int]:
    with write_session() as session:
        process = make_process(session)
        return [make_task(session, process, task_id=f"step_{i}").id for i in range(n)]


def _complete(task_pk: int, actor: str = "sandra") -> None:
    with write_session() as session:
        complete_task(session, task_pk, actor=actor, result={"answer": "yes"})


async def _first_event(trigger: HumanStepTrigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


def test_serialize_round_trip():
    trigger = HumanStepTrigger(task_pk=42, poll_interval=0.5)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {"task_pk": 42, "poll_interval": 0.5, "has_sla": True}


def test_round_trip_through_airflows_trigger_encoding():
    from airflow.models.trigger import Trigger

    row = Trigger.from_object(HumanStepTrigger(task_pk=7))
    assert row.classpath == "tempo.steps.trigger.HumanStepTrigger"
    assert row.kwargs == {"task_pk": 7, "poll_interval": None, "has_sla": True}


def test_triggers_persisted_by_an_older_version_still_load():
    trigger = HumanStepTrigger(task_pk=3, poll_interval=None, store_hint="retired-kwarg")
    assert trigger.serialize()[1] == {"task_pk": 3, "poll_interval": None, "has_sla": True}


def test_fires_when_task_completed(store):
    (task_pk,) = _make_tasks(1)

    async def scenario():
        waiting = asyncio.create_task(_first_event(HumanStepTrigger(task_pk=task_pk, poll_interval=0.05)))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await asyncio.to_thread(_complete, task_pk)
        event = await asyncio.wait_for(waiting, timeout=30)
        await dispose_async()
        return event

    event = asyncio.run(scenario())
    answer = event.pop("answer")
    assert event == {"status": "closed", "task_pk": task_pk, "task_status": "completed", "version": 2}
    assert answer["form"] == {"answer": "yes"}
    assert (answer["completed_by"], answer["outcome"], answer["task"]) == ("sandra", None, task_pk)


def test_same_trigger_twice_fires_the_same_event(store):
    (task_pk,) = _make_tasks(1)

    async def scenario():
        a = asyncio.create_task(_first_event(HumanStepTrigger(task_pk=task_pk, poll_interval=0.05)))
        b = asyncio.create_task(_first_event(HumanStepTrigger(task_pk=task_pk, poll_interval=0.05)))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(_complete, task_pk)
        events = await asyncio.wait_for(asyncio.gather(a, b), timeout=30)
        await dispose_async()
        return events

    first, second = asyncio.run(scenario())
    assert first == second and first["status"] == "closed"


def test_missing_task_gives_a_typed_error(store):
    async def scenario():
        event = await asyncio.wait_for(
            _first_event(HumanStepTrigger(task_pk=999_999, poll_interval=0.05)), 30
        )
        await dispose_async()
        return event

    event = asyncio.run(scenario())
    assert event["status"] == "error" and event["error_type"] == "task_missing"


@pytest.mark.parametrize("waiting", [10, 300], ids=["10-waiting", "300-waiting"])
def test_one_query_per_tick_whatever_the_number_waiting(store, waiting):
    ids = _make_tasks(waiting)

    async def scenario():
        triggers = [
            asyncio.create_task(_first_event(HumanStepTrigger(task_pk=i, poll_interval=0.05))) for i in ids
        ]
        await asyncio.sleep(0.2)  # every trigger registered
        poller = poller_for(store, 0.05)
        assert poller.waiting == waiting
        before = poller.queries
        await asyncio.sleep(1.0)
        ticks = poller.queries - before
        await asyncio.to_thread(_complete, ids[0])
        first = await asyncio.wait_for(triggers[0], timeout=30)
        still_waiting = sum(not t.done() for t in triggers)
        for t in triggers:
            t.cancel()
        await asyncio.gather(*triggers, return_exceptions=True)
        await dispose_async()
        return ticks, first, still_waiting

    ticks, first, still_waiting = asyncio.run(scenario())
    # One store query per tick for all waiting steps: about 20 ticks in a second, not 20 x waiting.
    assert 1 <= ticks <= 40
    assert first["task_pk"] == ids[0]
    assert still_waiting == waiting - 1


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgres_notify_wakes_the_poller_without_waiting_for_a_tick(store):
    (task_pk,) = _make_tasks(1)

    async def scenario():
        # A poll interval of an hour: only NOTIFY can deliver the completion within the timeout.
        waiting = asyncio.create_task(_first_event(HumanStepTrigger(task_pk=task_pk, poll_interval=3600)))
        await asyncio.sleep(1.0)  # registered, first tick done, LISTEN connected
        await asyncio.to_thread(_complete, task_pk)
        event = await asyncio.wait_for(waiting, timeout=20)
        await dispose_async()
        return event

    assert asyncio.run(scenario())["status"] == "closed"
