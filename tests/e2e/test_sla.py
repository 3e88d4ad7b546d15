"""SLA timers on real Airflow components with a real SMTP server: a reminder, then an escalation,
each exactly once and in order; a reminder due while SMTP is down arrives once SMTP is back."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tempo.store.engine import read_session
from tempo.store.models import HistoryEvent, SlaState, Task, TaskStatus
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


def mails_about(mail, ref: str) -> list[tuple[str, str]]:
    return [(m.envelope_to[0], m.subject) for m in list(mail.messages) if ref in m.subject]


def open_task(run_id: str) -> Task | None:
    with read_session() as session:
        return session.scalar(select(Task).where(Task.run_id == run_id, Task.status == TaskStatus.OPEN))


def test_reminder_then_escalation_each_once_in_order(airflow_stack, mail):
    run_id = airflow_stack.trigger("e2e_sla", {"ref": "SLA-A"}, user="rob")
    task = wait_until(lambda: open_task(run_id), what="the task")
    expected = [
        ("sandra@example.com", "[Tempo] To do: SLA SLA-A"),
        ("sandra@example.com", "[Tempo] Reminder: SLA SLA-A"),
        ("helen@example.com", "[Tempo] Escalated: SLA SLA-A"),
    ]
    wait_until(lambda: len(mails_about(mail, "SLA-A")) >= 3, timeout=120, interval=0.5, what="three emails")
    time.sleep(5)  # room for any duplicate to show up
    assert mails_about(mail, "SLA-A") == expected

    with read_session() as session:
        row = session.get_one(Task, task.id)
        kinds = session.scalars(
            select(HistoryEvent.kind).where(HistoryEvent.task_id == task.id).order_by(HistoryEvent.id)
        ).all()
    assert (row.sla_state, row.escalation_level) == (SlaState.ESCALATED, 1)
    assert kinds == ["created", "reminded", "overdue", "escalated"]
    # The reminder came before the due date, the escalation after it.
    reminded, escalated = (m for m in mail.messages if "SLA-A" in m.subject and "To do" not in m.subject)
    assert reminded.message["Date"] and escalated.message["Date"]

    from tempo.actions import complete

    complete(task.id, actor="sandra", answers={"answer": "late"})
    assert airflow_stack.wait_for_run("e2e_sla", run_id) == "success"


def test_reminder_due_while_smtp_is_down_arrives_once_it_is_back(airflow_stack, mail):
    run_id = airflow_stack.trigger("e2e_sla", {"ref": "SLA-B"}, user="rob")
    task = wait_until(lambda: open_task(run_id), what="the task")
    wait_until(lambda: mails_about(mail, "SLA-B"), what="the assignment email")
    mail.controller.stop()
    try:
        # The reminder is due 10 s after the task was created; wait until it has failed once.
        def reminder_failed() -> bool:
            from tempo.store.models import OutboxMessage

            with read_session() as session:
                row = session.scalar(
                    select(OutboxMessage).where(OutboxMessage.dedup_key.like(f"sla:{task.id}:remind%"))
                )
            return row is not None and row.attempts >= 1 and row.status.value == "pending"

        wait_until(reminder_failed, timeout=60, interval=0.5, what="the reminder to fail")
    finally:
        from tempo_dev.mailcatcher import restarted

        mail.controller = restarted(mail.controller)
    wait_until(
        lambda: any("Reminder" in s for _, s in mails_about(mail, "SLA-B")),
        timeout=90,
        interval=0.5,
        what="the reminder after SMTP came back",
    )
    wait_until(lambda: len(mails_about(mail, "SLA-B")) >= 3, timeout=90, interval=0.5, what="the escalation")
    time.sleep(5)
    subjects = [s for _, s in mails_about(mail, "SLA-B")]
    assert subjects.count("[Tempo] Reminder: SLA SLA-B") == 1
    assert subjects.count("[Tempo] Escalated: SLA SLA-B") == 1

    from tempo.actions import complete

    complete(task.id, actor="sandra", answers={})
    assert airflow_stack.wait_for_run("e2e_sla", run_id) == "success"


def test_process_deadline_emails_owner_and_manager_and_shows_on_the_sla_page(airflow_stack, mail):
    run_id = airflow_stack.trigger("e2e_deadline", {"ref": "DL-1"}, user="rob")
    task = wait_until(lambda: open_task(run_id), what="the task")

    def overdue_mails() -> list[tuple[str, str]]:
        return [(to, s) for to, s in mails_about(mail, "Deadline probe DL-1") if "Process overdue" in s]

    # The owner unit's head (Helen) and Rob's manager (Mike), once each.
    wait_until(lambda: len(overdue_mails()) >= 2, timeout=180, interval=1, what="the deadline emails")
    time.sleep(3)
    assert sorted(to for to, _ in overdue_mails()) == ["helen@example.com", "mike@example.com"]

    page = airflow_stack.api("GET", "/tempo/sla", user="helen")
    assert page.status_code == 200
    assert "Deadline probe DL-1" in page.text

    from tempo.actions import complete

    complete(task.id, actor="sandra", answers={})
    assert airflow_stack.wait_for_run("e2e_deadline", run_id) == "success"
