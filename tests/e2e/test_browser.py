"""A real browser (Debian's chromium driven by Playwright) on the real stack.

Rob starts an RMA on the start page; Sandra opens the link from the email she really received,
without any Airflow login, submits the S/O number and sees the confirmation; Rob's inbox shows the
result. Hostile text in the request renders as text and fires no dialog. Screenshots are kept in
``tests/artifacts/screenshots``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

SHOTS = REPO / "tests" / "artifacts" / "screenshots"
HOSTILE_CUSTOMER = '<img src=x onerror="alert(1)">ACME'
HOSTILE_PART = "<script>alert(2)</script>Pump"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required (make test installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


def logged_in(browser, stack, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "_token", "value": stack.token(username), "url": stack.base_url}])
    return context


def test_rma_through_the_browser(browser, airflow_stack, mail):
    dialogs: list[str] = []

    # Rob asks for a sales order on the start page.
    rob = logged_in(browser, airflow_stack, "rob")
    page = rob.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{airflow_stack.base_url}/tempo/start/rma_sales_order")
    page.fill("#f-rma_number", "RMA-88001")
    page.fill("#f-customer", HOSTILE_CUSTOMER)
    page.fill("#f-part", HOSTILE_PART)
    page.click("#start-form button[type=submit]")
    page.wait_for_selector("#notice")
    assert "/tempo/processes/" in page.url  # the new process's own page
    page.screenshot(path=str(SHOTS / "1-rob-started.png"), full_page=True)

    # Sandra gets a real email and opens its link in a browser that knows no Airflow login.
    message = wait_until(
        lambda: next(
            (m for m in mail.messages if "RMA-88001" in m.subject and "sandra@example.com" in m.envelope_to),
            None,
        ),
        what="Sandra's email",
    )
    link = re.search(r"(http://\S+/tempo/act/\S+)", message.body("plain")).group(1)
    sandra = browser.new_context(viewport={"width": 1280, "height": 900})
    form = sandra.new_page()
    form.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    response = form.goto(link)
    assert response.status == 200
    assert "Create a sales order for RMA-88001" in form.inner_text("#task-title")
    # The hostile customer and part are shown as text, never run.
    instructions = form.inner_text("#instructions")
    assert HOSTILE_CUSTOMER in instructions and HOSTILE_PART in instructions
    form.screenshot(path=str(SHOTS / "2-sandra-form.png"), full_page=True)

    # The format is on the page before any error, and the browser holds a wrong one back.
    assert "Use the form SO-123456." in form.inner_text("#format-so_number")
    assert form.get_attribute("#f-so_number", "placeholder") == "SO-123456"
    form.fill("#f-so_number", "12345")
    form.click("#task-form button[type=submit]")
    assert form.eval_on_selector("#f-so_number", "e => e.validity.patternMismatch")
    assert form.url == link and form.query_selector("#error-so_number") is None
    form.screenshot(path=str(SHOTS / "3-sandra-invalid.png"), full_page=True)

    form.fill("#f-so_number", "SO-880001")
    form.click("#task-form button[type=submit]")
    form.wait_for_selector("#message")
    assert "Thank you" in form.inner_text("#message") and "SO-880001" in form.inner_text("#message")
    form.screenshot(path=str(SHOTS / "4-sandra-confirmation.png"), full_page=True)

    # Rob's inbox shows the result once the process has recorded it.
    def rob_sees_result() -> bool:
        page.goto(f"{airflow_stack.base_url}/tempo/inbox")
        return "SO-880001" in page.inner_text("#my-requests")

    wait_until(rob_sees_result, timeout=120, interval=1, what="Rob's inbox to show the S/O number")
    page.screenshot(path=str(SHOTS / "5-rob-inbox.png"), full_page=True)
    assert "RMA-88001" in page.inner_text("#my-requests")

    # The process page with its route map renders in the browser too.
    page.click("#my-requests a")
    page.wait_for_selector("svg[role=img]")
    page.screenshot(path=str(SHOTS / "6-process.png"), full_page=True)

    assert dialogs == []
    rob.close()
    sandra.close()


def test_tempo_inside_airflow_follows_its_navigation_theme_and_address(browser, airflow_stack):
    """Airflow's navigation bar carries Tempo's inbox; inside Airflow's frame the page has no header
    of its own, wears Airflow's theme (and follows a switch), and the address bar tracks the page, so
    that a reload lands where the person was."""
    started = airflow_stack.api(
        "POST",
        "/tempo/api/v1/processes/rma_sales_order",
        user="rob",
        json={"conf": {"rma_number": "RMA-88077", "customer": "Frame GmbH", "part": "Valve"}},
    )
    assert started.status_code == 201, started.text
    task = wait_until(lambda: open_task(started.json()["run_id"], "create_sales_order"), what="the task")

    sandra = logged_in(browser, airflow_stack, "sandra")
    sandra.add_init_script("window.localStorage.setItem('theme', 'dark')")  # Airflow's own setting
    page = sandra.new_page()
    page.goto(f"{airflow_stack.base_url}/")
    page.locator("[data-testid=nav-sidebar] a[href$='/plugin/tempo']").click()
    # Airflow mirrors the frame's address into its own: /plugin/tempo/tempo/inbox.
    page.wait_for_url("**/plugin/tempo/tempo/inbox")

    def tempo_frame(path: str):
        """The frame showing ``path``; Playwright learns of a frame's navigation only while it is
        called, so the wait is Playwright's own."""
        for _ in range(1200):
            found = [f for f in page.frames if f is not page.main_frame and f.url.endswith(path)]
            if found:
                return found[0]
            page.wait_for_timeout(100)
        page.screenshot(path=str(SHOTS / "airflow-frame-missing.png"))
        raise AssertionError(f"no frame at {path}: {page.url} holds {[f.url for f in page.frames]}")

    inbox = tempo_frame("/tempo/inbox")
    inbox.wait_for_selector("h1")
    assert inbox.locator("header").count() == 0  # Airflow's navigation is the page's
    assert inbox.evaluate("document.documentElement.classList.contains('dark')")
    background = inbox.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 24, 28)", background
    page.screenshot(path=str(SHOTS / "airflow-frame-dark.png"))

    inbox.locator(f"a[href='/tempo/tasks/{task.id}']").first.click()
    page.wait_for_url(f"**/plugin/tempo/tempo/tasks/{task.id}")
    page.reload()
    task_page = tempo_frame(f"/tempo/tasks/{task.id}")
    task_page.wait_for_selector("h1")
    assert "RMA-88077" in task_page.inner_text("h1")

    # Switching Airflow to its light theme switches the page in the frame with it.
    page.evaluate("document.documentElement.classList.replace('dark', 'light')")
    wait_until(
        lambda: not task_page.evaluate("document.documentElement.classList.contains('dark')"),
        what="the light theme in the frame",
    )
    page.screenshot(path=str(SHOTS / "airflow-frame-light.png"))
    sandra.close()
