"""The report dashboards in a real browser (Debian's chromium through Playwright) on the real stack.

Processes and tasks of a template of their own are written into the stack's store with known
numbers; each dashboard is opened as the manager who may see it, screenshot into
``tests/artifacts/screenshots``, and its server-drawn SVG charts must show bars for that data.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tempo.store.engine import write_session
from tempo.store.models import Process, ProcessStatus, Task, TaskStatus, utcnow
from tests.e2e.test_browser import SHOTS, browser, logged_in  # noqa: F401 (the module's browser fixture)
from tests.factories import make_process, make_task

pytestmark = pytest.mark.e2e

TEMPLATE = "report_browser_demo"


@pytest.fixture(scope="module")
def seeded(airflow_stack) -> dict[str, int]:
    """Three running processes (two wait at approve_discount, one at qualify_lead), one finished;
    Sandra answered three qualify steps (two on time, one late) and has an overdue one; John has
    two overdue and answered one."""
    now = utcnow()
    ids: dict[str, int] = {}
    with write_session() as session:

        def process(name, requester, status=ProcessStatus.RUNNING, days_ago=3):
            p = make_process(
                session, dag_id=TEMPLATE, template=TEMPLATE, requester=requester, title=f"Deal {name}"
            )
            started = now - timedelta(days=days_ago)
            finished = started + timedelta(days=1) if status != ProcessStatus.RUNNING else None
            session.execute(
                update(Process)
                .where(Process.id == p.id)
                .values(status=status, started_at=started, finished_at=finished)
            )
            ids[name] = p.id
            return p, started

        def task(p, step, who, created, *, done=None, due=None):
            t = make_task(
                session,
                p,
                dag_id=TEMPLATE,
                task_id=step,
                title=f"{step} ({p.title})",
                assignee=who,
                due_at=due,
            )
            values = {"created_at": created}
            if done is not None:
                values |= {"status": TaskStatus.COMPLETED, "completed_at": done, "completed_by": who}
            session.execute(update(Task).where(Task.id == t.id).values(**values))

        for name, requester in (("A", "rob"), ("B", "rob")):
            p, started = process(name, requester)
            task(
                p,
                "qualify_lead",
                "sandra",
                started,
                done=started + timedelta(hours=2),
                due=started + timedelta(hours=4),
            )
            task(p, "approve_discount", "john", started + timedelta(hours=2), due=now - timedelta(hours=6))
        p, started = process("C", "sandra")
        task(p, "qualify_lead", "sandra", started, due=now - timedelta(hours=3))
        p, started = process("D", "rob", status=ProcessStatus.SUCCESS, days_ago=5)
        task(
            p,
            "qualify_lead",
            "sandra",
            started,
            done=started + timedelta(hours=9),
            due=started + timedelta(hours=4),
        )
        task(p, "approve_discount", "john", started + timedelta(hours=9), done=started + timedelta(hours=10))
    return ids


def bars(page, selector: str) -> list[tuple[str, float, float]]:
    """(label, value, drawn width) of every bar of the charts under ``selector``."""
    return page.eval_on_selector_all(
        f"{selector} svg.chart rect.bar",
        "els => els.map(e => [e.dataset.label, parseFloat(e.dataset.value),"
        " parseFloat(e.getAttribute('width'))])",
    )


def open_dashboard(browser, stack, user: str, path: str, shot: str):  # noqa: F811
    context = logged_in(browser, stack, user)
    page = context.new_page()
    response = page.goto(f"{stack.base_url}/tempo/reports/{path}")
    assert response.status == 200, response.text()
    page.wait_for_selector("svg.chart")
    page.screenshot(path=str(SHOTS / f"reports-{shot}.png"), full_page=True)
    return context, page


def test_dashboards_draw_their_data(browser, airflow_stack, seeded):  # noqa: F811
    query = f"template={TEMPLATE}"

    context, page = open_dashboard(browser, airflow_stack, "admin", f"funnel?{query}", "1-funnel")
    funnel = {label: value for label, value, width in bars(page, "#funnel-steps") if width > 0}
    assert funnel == {"Approve discount": 2, "Qualify lead": 1}
    conversion = {label: value for label, value, width in bars(page, "#funnel-conversion") if width > 0}
    assert conversion == {"Qualify lead": 4, "Approve discount": 3}
    context.close()

    # Helen heads customer service: she sees Sandra's overdue step, not John's (repair).
    context, page = open_dashboard(browser, airflow_stack, "helen", f"overdue?{query}", "2-overdue-helen")
    assert [(label, value) for label, value, width in bars(page, "#overdue-units") if width > 0] == [
        ("Customer service", 1)
    ]
    assert "approve_discount" not in page.inner_text("#overdue-tasks")
    context.close()

    context, page = open_dashboard(browser, airflow_stack, "olga", f"overdue?{query}", "2-overdue-olga")
    assert {label: value for label, value, _ in bars(page, "#overdue-units")} == {
        "Repair shop": 2,
        "Customer service": 1,
    }
    context.close()

    context, page = open_dashboard(browser, airflow_stack, "admin", f"performance?{query}", "3-performance")
    on_time = {label: value for label, value, width in bars(page, "#on-time-chart") if width > 0}
    assert on_time == {"Sandra Service": 66.7, "John Repair": 100.0}  # Sandra: two of three answers on time
    completed = {label: value for label, value, width in bars(page, "#completed-chart") if width > 0}
    assert completed == {"Customer service": 3, "Repair shop": 1}
    sandra = page.locator("#performance-people tr", has_text="Sandra Service")
    sandra.locator("a[title='show the late ones']").click()
    page.wait_for_selector("#drill-tasks")
    page.screenshot(path=str(SHOTS / "reports-4-drill-down.png"), full_page=True)
    assert page.locator("#drill-tasks tr").count() == 1 + 1  # header and the late qualify_lead of D
    context.close()

    context, page = open_dashboard(browser, airflow_stack, "admin", f"processes?{query}", "5-process-log")
    assert {label: value for label, value, _ in bars(page, "#status-chart")} == {"Running": 3, "Done": 1}
    assert page.locator("#process-log tr").count() == 1 + 4
    context.close()
