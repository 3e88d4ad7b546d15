"""SIGKILL the triggerers, the scheduler or an API server while steps wait; complete half of them
while it is down, one of them only in the store (its wake lost); after the restart every completed
step has resumed with its answer, the others still wait, and nothing was lost or done twice.
``bench/faults.py`` runs the same with 1,000 steps."""

from __future__ import annotations

import pytest

from bench.faults import FaultResult, inject_fault, open_steps, wait_for_waiting

pytestmark = pytest.mark.e2e

#: Steps waiting per fault; half of them are completed while the component is down.
STEPS = 10
COMPONENTS = ("triggerer", "scheduler", "api-server")


@pytest.fixture(scope="module")
def waiting_steps(pg_stack):
    """STEPS waiting steps for each fault, all opened at once by one mapped HumanStep."""
    run_ids = open_steps(pg_stack, "FAULT", STEPS * len(COMPONENTS), runs=1)
    steps = wait_for_waiting(pg_stack, run_ids, STEPS * len(COMPONENTS), timeout=600)
    return {component: steps[n * STEPS : (n + 1) * STEPS] for n, component in enumerate(COMPONENTS)}


@pytest.mark.parametrize("component", COMPONENTS)
def test_steps_completed_while_a_component_is_down_resume_once_it_is_back(
    pg_stack, pg_mail, waiting_steps, component
):
    result: FaultResult = inject_fault(
        pg_stack, component, waiting_steps[component], STEPS // 2, pg_mail, down_for=2, timeout=300
    )
    print(f"\n{result}")
    assert sum(result.completions.values()) == STEPS // 2
    assert set(result.completions) <= {"web 200", "store only"}, result.completions
    assert result.resumed == STEPS // 2, result
    assert result.still_waiting == STEPS - STEPS // 2, result
    assert (result.lost, result.wrong_answer, result.woken_without_answer) == (0, 0, 0), result
    assert (result.duplicate_emails, result.duplicate_completions) == (0, 0), result
    assert result.ok
    if component == "triggerer":  # waiting needs no triggerer: all resumed while none was alive
        assert result.resumed_while_down == STEPS // 2
    if component == "scheduler":  # woken, but nothing runs them until the scheduler is back
        assert result.resumed_while_down == 0
