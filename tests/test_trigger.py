"""The retired ``HumanStepTrigger``: trigger rows an older Tempo stored still load and fire."""

from __future__ import annotations

import asyncio

import pytest

from tempo.steps.trigger import HumanStepTrigger


@pytest.mark.parametrize(
    "stored_kwargs",
    [{"task_pk": 7}, {"task_pk": 7, "poll_interval": None, "has_sla": True}, {"task_pk": "7", "x": 1}],
    ids=["current", "as-stored-before-awaiting-input", "unknown-kwarg"],
)
def test_stored_kwargs_load_and_round_trip(stored_kwargs):
    from airflow.models.trigger import Trigger

    trigger = HumanStepTrigger(**stored_kwargs)
    classpath, kwargs = trigger.serialize()
    assert (classpath, kwargs) == ("tempo.steps.trigger.HumanStepTrigger", {"task_pk": 7})
    assert Trigger.from_object(trigger).kwargs == {"task_pk": 7}


def test_it_fires_at_once_so_the_step_parks_the_new_way():
    event = asyncio.run(asyncio.wait_for(HumanStepTrigger(task_pk=3).run().__anext__(), 5))
    assert event.payload == {"status": "repark", "task_pk": 3}
