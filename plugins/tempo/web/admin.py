"""Pages for whoever keeps processes on time: SLA misses (of the processes the viewer may see), and
the email outbox (operators only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, update

from tempo import reports, wording
from tempo.mail.outbox import deliver_pending
from tempo.store.engine import read_session, write_session
from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    HistoryEvent,
    OutboxMessage,
    OutboxStatus,
    Process,
    ProcessStatus,
    Task,
    utcnow,
)
from tempo.web import URL_PREFIX
from tempo.web.common import StoreId, render
from tempo.web.policy import ScopeDep, SessionDep
from tempo.web.security import CurrentUser, check_csrf, csrf_token, is_operator, navigation, user_name

router = APIRouter(include_in_schema=False, dependencies=[Depends(navigation)])


@router.get("/sla")
def sla_misses(request: Request, user: CurrentUser, scope: ScopeDep, session: SessionDep) -> Response:
    """Steps past their due date and processes past their deadline, most overdue first: of the
    processes ``user`` may see (``reports.visible_processes``)."""
    now = utcnow()
    visible = select(Process.id).where(reports.visible_processes(scope))
    late_tasks = list(
        session.scalars(
            select(Task)
            .where(
                Task.status.in_(list(ACTIVE_TASK_STATUSES)),
                Task.due_at.is_not(None),
                Task.due_at < now,
                Task.process_id.in_(visible),
            )
            .order_by(Task.due_at)
            .limit(500)
        )
    )
    late_ids = select(HistoryEvent.process_id).where(HistoryEvent.kind == "process_overdue")
    late_processes = list(
        session.scalars(
            select(Process)
            .where(
                Process.id.in_(late_ids),
                Process.status == ProcessStatus.RUNNING,
                reports.visible_processes(scope),
            )
            .order_by(Process.started_at)
            .limit(500)
        )
    )
    titles = {
        p.id: p.title
        for p in session.scalars(select(Process).where(Process.id.in_({t.process_id for t in late_tasks})))
    }
    return render(
        request,
        "sla.html",
        {
            "user": user_name(user),
            "tasks": late_tasks,
            "processes": late_processes,
            "titles": titles,
            "names": wording.Names(session),
            "now": now,
        },
    )


def _require_operator(user: object) -> None:
    if not is_operator(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only Airflow's ops and admins see the outbox.")


@router.get("/admin/outbox")
def outbox(request: Request, user: CurrentUser) -> Response:
    _require_operator(user)
    with read_session() as session:
        messages = list(
            session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status.in_(
                        [OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED]
                    )
                )
                .order_by(OutboxMessage.id.desc())
                .limit(500)
            )
        )
    return render(
        request,
        "outbox.html",
        {"user": user_name(user), "messages": messages, "csrf": csrf_token(user_name(user), "outbox")},
    )


@router.post("/admin/outbox/{message_id}/retry")
async def retry(request: Request, message_id: StoreId, user: CurrentUser) -> Response:
    _require_operator(user)
    form = await request.form()
    check_csrf(str(form.get("csrf") or ""), user_name(user), "outbox")
    with write_session() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such message.")
        if row.status == OutboxStatus.SENT:
            raise HTTPException(status.HTTP_409_CONFLICT, "This message was already sent.")
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED]),
            )
            .values(status=OutboxStatus.PENDING, next_attempt_at=utcnow(), attempts=0)
        )
        key = row.dedup_key
    deliver_pending(keys=[key])
    return RedirectResponse(f"{URL_PREFIX}/admin/outbox", status_code=status.HTTP_303_SEE_OTHER)
