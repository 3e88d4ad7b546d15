"""Every page a person opens, in a real browser at a phone's width and at a desktop's: nothing scrolls
sideways, and axe-core (the accessibility checker, installed from npm by ``make test``) finds no
serious or critical violation. A screenshot of each page at each width stays in
``tests/artifacts/screenshots/walk``.

The data is made the way people make it (processes started through the API, tasks completed
through it), with values long enough to break a careless layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tempo import links
from tempo.store.engine import read_session
from tempo.store.models import Process
from tests.e2e.conftest import open_task, wait_until
from tests.e2e.test_browser import SHOTS, browser  # noqa: F401 (the module's browser fixture)

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1400)
#: axe-core's impact levels that fail the walk (``minor`` and ``moderate`` are reported, not failed)
FAILING_IMPACTS = ("serious", "critical")
LONG_WORD = "Supercalifragilisticexpialidocious-" * 4  # no place to break it


@dataclass(frozen=True)
class Stop:
    name: str
    path: str
    #: who opens it: a username, or None for someone with no Airflow login (an emailed link)
    user: str | None


@pytest.fixture(scope="module")
def stops(airflow_stack) -> list[Stop]:
    def start(dag_id: str, user: str, conf: dict) -> str:
        response = airflow_stack.api(
            "POST", f"/tempo/api/v1/processes/{dag_id}", user=user, json={"conf": conf}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["run_id"])

    def complete(task_pk: int, user: str, body: dict) -> None:
        response = airflow_stack.api("POST", f"/tempo/api/v1/tasks/{task_pk}/complete", user=user, json=body)
        assert response.status_code == 200, response.text

    rma_run = start(
        "rma_sales_order",
        "rob",
        {
            "rma_number": "RMA-770001",
            "customer": LONG_WORD,
            "part": f"Pump {LONG_WORD}",
            "in_warranty": False,
        },
    )
    sales_order = wait_until(
        lambda: open_task(rma_run, "create_sales_order"), timeout=120, what="the S/O task"
    )

    request_run = start(
        "customer_request",
        "sandra",
        {
            "counterparty_name": "Globex",
            "counterparty_email": "buyers@globex.example",
            "request_type": "delivery_problem",
            "subject": f"Order PO-7701 {LONG_WORD}",
            "description": f"{LONG_WORD} " * 20,
        },
    )
    take = wait_until(lambda: open_task(request_run, "take_request"), timeout=120, what="the take task")
    complete(take.id, "sandra", {"outcome": "take"})
    decide = wait_until(lambda: open_task(request_run, "decide"), timeout=120, what="the decision task")
    complete(decide.id, "sandra", {"answers": {"decision": "repair", "explanation": LONG_WORD}})
    respond = wait_until(
        lambda: open_task(request_run, "counterparty_review"), timeout=120, what="the counterparty's task"
    )
    with read_session() as session:
        process = session.scalars(select(Process).where(Process.run_id == request_run)).one()
    request_status = links.request_status_path(process.id)
    respond_path = links.respond_link(respond.id, str(process.counterparty_code)).removeprefix(
        airflow_stack.base_url
    )
    act_path = links.task_link(sales_order.id, "sandra").removeprefix(airflow_stack.base_url)
    return [
        Stop("inbox", "/tempo/inbox", "sandra"),
        Stop("task", f"/tempo/tasks/{sales_order.id}", "sandra"),
        Stop("process", f"/tempo/processes/{sales_order.process_id}", "rob"),
        Stop("request-process", f"/tempo/processes/{process.id}", "sandra"),
        Stop("start-catalog", "/tempo/start", "rob"),
        Stop("start-form", "/tempo/start/rma_sales_order", "rob"),
        Stop("sla", "/tempo/sla", "admin"),
        Stop("outbox", "/tempo/admin/outbox", "admin"),
        Stop("reports-funnel", "/tempo/reports/funnel", "admin"),
        Stop("reports-overdue", "/tempo/reports/overdue", "admin"),
        Stop("reports-performance", "/tempo/reports/performance", "admin"),
        Stop("reports-performance-tasks", "/tempo/reports/performance/tasks", "admin"),
        Stop("reports-processes", "/tempo/reports/processes", "admin"),
        Stop("act", act_path, None),
        Stop("public-request-types", "/tempo/request", None),
        Stop("public-request-form", "/tempo/request/warranty_claim", None),
        Stop("request-status", request_status, None),
        Stop("respond", respond_path, None),
    ]


@pytest.fixture(scope="module")
def contexts(browser, airflow_stack) -> Iterator[dict]:  # noqa: F811
    """One browser context per (person, width): logged in through Airflow's cookie, or not at all.

    The pages' Content-Security-Policy allows no script but their own; the walk injects axe-core,
    so its browser sets that policy aside (``bypass_csp``), which changes nothing of the layout.
    """
    opened: dict = {}

    def context(user: str | None, width: int):
        key = (user, width)
        if key not in opened:
            opened[key] = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
            if user is not None:
                cookie = {"name": "_token", "value": airflow_stack.token(user), "url": airflow_stack.base_url}
                opened[key].add_cookies([cookie])
            opened[key].set_default_timeout(60_000)
        return opened[key]

    yield context
    for value in opened.values():
        value.close()


def overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0: nothing scrolls sideways)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in violations
        if v["impact"] in FAILING_IMPACTS
    ]


def test_every_page_fits_the_screen_and_passes_axe(airflow_stack, stops, contexts):
    assert AXE.exists(), "axe-core is missing: `make test` installs it with npm"
    shots = SHOTS / "walk"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for width in WIDTHS:
        for stop in stops:
            context = contexts(stop.user, width)
            page = context.new_page()
            page.set_viewport_size({"width": width, "height": 900})
            response = page.goto(f"{airflow_stack.base_url}{stop.path}")
            assert response is not None and response.status == 200, (stop, response and response.status)
            page.screenshot(path=str(shots / f"{stop.name}-{width}.png"), full_page=True)
            if (wider := overflow(page)) > 0:
                problems.append(f"{stop.name} at {width}px scrolls sideways by {wider}px")
            problems += [f"{stop.name} at {width}px: {v}" for v in serious_violations(page)]
            page.close()
    assert problems == [], "\n".join(problems)
