"""Tempo's pages for logged-in Airflow users: inbox, task, process, start catalog, start forms and
absences.

Every page depends on Airflow's authentication and on the rules of ``web/policy.py`` (who reads,
acts on or manages a task); every form POST carries a CSRF token; every state
change goes through ``tempo.actions`` (validated, one compare-and-set), and answers with a redirect
so a reload never submits twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from tempo import actions, required_actions, wording
from tempo.attachments import AttachmentError, add_attachment
from tempo.forms import FormErrors
from tempo.store.engine import read_session
from tempo.store.models import ACTIVE_TASK_STATUSES, HistoryEvent, Person, Process, Task, TaskStatus, utcnow
from tempo.store.tasks import TaskConflict
from tempo.web import URL_PREFIX, airflow_data, starting
from tempo.web.common import (
    AbsenceForm,
    client_email_errors,
    form_data,
    load_task,
    parse_status_filter,
    person_inbox,
    posted_version,
    read_upload,
    record_labels,
    render,
    start_labels,
    step_titles,
    task_view,
    unconfirmed_destructive,
    visible_absences,
)
from tempo.web.policy import (
    ABSENCES_PURPOSE,
    ActorDep,
    CommenterDep,
    HolderDep,
    ManagerDep,
    OpenTaskDep,
    ReadableProcessDep,
    ReadableTaskDep,
    SessionDep,
    TaskDep,
    TaskFormDep,
    done_reading,
    may_act,
    may_manage,
    person_of,
    require_absence_recorder,
    start_purpose,
    task_purpose,
)
from tempo.web.routemap import render_route_map
from tempo.web.security import (
    CurrentUser,
    check_csrf,
    csrf_token,
    is_operator,
    navigation,
    require,
    require_read,
    user_name,
)
from tempo.web.starting import BusinessKeyTaken

router = APIRouter(include_in_schema=False, dependencies=[Depends(navigation)])

# Posted with every answer but not answers themselves: the page's form sends its task version too.
_NON_FIELDS = {"csrf", "outcome", "version", "confirm"}
#: The start form's "start another" button, sent after the warning about a business key in use.
START_ANOTHER = "start_another"


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


@router.get("/")
def home(user: CurrentUser) -> RedirectResponse:
    require_read(user)
    return RedirectResponse(f"{URL_PREFIX}/inbox", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/inbox")
def inbox(
    request: Request,
    user: CurrentUser,
    q: str | None = None,
    process: str | None = None,
    key: str | None = None,
    counterparty: str | None = None,
    status_filter: str | None = None,
) -> Response:
    require_read(user)
    statuses = parse_status_filter(status_filter)
    with read_session() as session:
        person = person_of(session, user)
        tasks = []
        if person is not None:
            tasks = person_inbox(
                session,
                person,
                search=q,
                dag_id=process,
                business_key=key,
                counterparty=counterparty,
                statuses=statuses,
            )
        processes = {
            p.id: p
            for p in session.scalars(select(Process).where(Process.id.in_({t.process_id for t in tasks})))
        }
        # What the person asked for, and how far each request got.
        requester = person.username if person is not None else user_name(user)
        requests = list(
            session.scalars(
                select(Process)
                .where(Process.requester == requester)
                .order_by(Process.started_at.desc())
                .limit(20)
            )
        )
        return render(
            request,
            "inbox.html",
            {
                "user": user_name(user),
                "person": person,
                "tasks": tasks,
                "processes": processes,
                "now": utcnow(),
                "requests": requests,
                "names": wording.Names(session),
                "labels": {dag_id: start_labels(dag_id) for dag_id in {p.dag_id for p in requests}},
                "filters": {
                    "q": q or "",
                    "process": process or "",
                    "key": key or "",
                    "counterparty": counterparty or "",
                    "status_filter": status_filter or "",
                },
            },
        )


def _task_page(
    request: Request,
    user: Any,
    session: Session,
    task_pk: int,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    notice: str | None = None,
    confirm: str | None = None,
    handover: Any = None,
) -> Response:
    """The task's page as the task is now (read afresh: an action may just have changed it), for a
    ``user`` whom a dependency already let read or act on it."""
    task = load_task(session, task_pk)
    view = task_view(session, task)
    person = person_of(session, user)
    can_act = may_act(session, person, task)
    can_manage = may_manage(session, user, person, task)
    client_email = required_actions.client_email_view(session, task)
    done_reading(session)
    shape = airflow_data.run_shape(task.dag_id, task.run_id, view.titles)
    states = shape.states
    if task.status not in ACTIVE_TASK_STATUSES and states.get(task.task_id) == "current":
        # Closed in the store while Airflow still resumes the step: for the reader it is over.
        closed = {TaskStatus.CANCELLED: "skipped", TaskStatus.EXPIRED: "failed"}.get(task.status, "done")
        states = {**states, task.task_id: closed}
    downstream = [s for s in shape.steps if task.task_id in s.upstream]
    subject = user_name(user)
    return render(
        request,
        "task.html",
        {
            "user": subject,
            "view": view,
            "task": task,
            "errors": errors or {},
            "values": values or {},
            "can_act": can_act,
            "can_manage": can_manage,
            "notice": notice,
            "confirm": confirm,
            "handover": handover,
            "can_claim": can_act and task.status == TaskStatus.OPEN and task.assignee is None,
            "can_unclaim": task.status == TaskStatus.CLAIMED
            and person is not None
            and task.claimed_by == person.username,
            "route_map": render_route_map(shape.steps, states, highlight=task.task_id),
            "next_steps": downstream,
            "client_email": client_email,
            "client_email_action": f"{URL_PREFIX}/tasks/{task.id}/email-client",
            "csrf": csrf_token(subject, task_purpose(task.id)),
        },
        status_code=status_code,
    )


_NOTICES = {
    "completed": "Thank you: your answer is recorded.",
    "claimed": "The task is yours now.",
    "unclaimed": "The task is back in its queue.",
    "commented": "Comment added.",
    "attached": "File attached.",
    "assigned": "The task was handed over.",
    "emailed": "Your message to the client is on its way.",
}


def _acted(
    request: Request,
    user: Any,
    session: Session,
    task: Task,
    done: str,
    action: Callable[[], object],
    values: dict[str, Any] | None = None,
    field_errors: Callable[[FormErrors], dict[str, str]] = lambda exc: exc.errors,
) -> Response:
    """Do ``action`` to ``task`` and see its page again with the notice ``done``; refused, the task
    page shows why: 422 with a message per field, 409 when someone acted first or it is closed."""
    try:
        action()
    except FormErrors as exc:
        errors = field_errors(exc)
        return _task_page(request, user, session, task.id, errors=errors, values=values, status_code=422)
    except TaskConflict as exc:
        return _task_page(request, user, session, task.id, errors={"_form": str(exc)}, status_code=409)
    return _see(f"{URL_PREFIX}/tasks/{task.id}?done={done}")


@router.get("/tasks/{task_id}")
def task_page(
    request: Request, task: ReadableTaskDep, user: CurrentUser, session: SessionDep, done: str | None = None
) -> Response:
    return _task_page(request, user, session, task.id, notice=_NOTICES.get(done or ""))


@router.post("/tasks/{task_id}/complete")
def complete(
    request: Request,
    data: TaskFormDep,
    task: OpenTaskDep,
    person: ActorDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    answers = {k: v for k, v in data.items() if k not in _NON_FIELDS}
    try:
        confirm = unconfirmed_destructive(session, task, data, answers)
    except FormErrors as exc:
        return _task_page(request, user, session, task.id, errors=exc.errors, values=answers, status_code=422)
    if confirm is not None:
        return _task_page(request, user, session, task.id, values=answers, confirm=confirm)

    def answer() -> object:
        return actions.complete(
            task.id,
            actor=person.username,
            answers=answers,
            outcome=data.get("outcome") or None,
            expected_version=posted_version(data),
        )

    return _acted(request, user, session, task, "completed", answer, values=answers)


@router.post("/tasks/{task_id}/claim")
def claim(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: ActorDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    return _acted(
        request, user, session, task, "claimed", lambda: actions.claim(task.id, actor=person.username)
    )


@router.post("/tasks/{task_id}/unclaim")
def unclaim(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: HolderDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    return _acted(
        request, user, session, task, "unclaimed", lambda: actions.unclaim(task.id, actor=person.username)
    )


def _hand_over(
    request: Request, data: dict[str, Any], task: Task, person: Person, user: Any, session: Session, kind: str
) -> Response:
    to = str(data.get("to", "")).strip()
    try:
        if not to:
            raise FormErrors({"to": "Choose a person."})
        # The page says whom the task goes to, and hands it over only once that is confirmed.
        if data.get("confirm") != to:
            handover = actions.handover_person(session, to)
            return _task_page(request, user, session, task.id, handover=handover)
        actions.assign(task.id, actor=person.username, to=to, kind=kind)
    except FormErrors as exc:
        return _task_page(request, user, session, task.id, errors=exc.errors, status_code=422)
    except TaskConflict as exc:
        return _task_page(request, user, session, task.id, errors={"_form": str(exc)}, status_code=409)
    return _see(f"{URL_PREFIX}/tasks/{task.id}?done=assigned")


@router.post("/tasks/{task_id}/delegate")
def delegate(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: ActorDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    return _hand_over(request, data, task, person, user, session, "delegated")


@router.post("/tasks/{task_id}/reassign")
def reassign(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: ManagerDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    return _hand_over(request, data, task, person, user, session, "reassigned")


@router.post("/tasks/{task_id}/email-client")
def email_client(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: ActorDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    values = {"client_subject": str(data.get("subject", "")), "client_text": str(data.get("text", ""))}

    def send() -> object:
        return actions.email_client(
            task.id, actor=person.username, subject=values["client_subject"], text=values["client_text"]
        )

    return _acted(request, user, session, task, "emailed", send, values, client_email_errors)


@router.post("/tasks/{task_id}/comment")
def comment(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: CommenterDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    text = str(data.get("text", ""))
    return _acted(
        request,
        user,
        session,
        task,
        "commented",
        lambda: actions.comment(task.id, actor=person.username, text=text),
    )


@router.post("/tasks/{task_id}/attachments")
async def attach(
    request: Request,
    data: TaskFormDep,
    task: TaskDep,
    person: ActorDep,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        return _task_page(request, user, session, task.id, errors={"file": "Choose a file."}, status_code=422)
    content = await read_upload(upload)
    try:
        add_attachment(
            task.id,
            actor=person.username,
            filename=upload.filename or "file",
            content_type=upload.content_type or "",
            data=content,
        )
    except AttachmentError as exc:
        return _task_page(request, user, session, task.id, errors={"file": str(exc)}, status_code=422)
    return _see(f"{URL_PREFIX}/tasks/{task.id}?done=attached")


@router.get("/processes/{process_id}")
def process_page(
    request: Request,
    process: ReadableProcessDep,
    user: CurrentUser,
    session: SessionDep,
    started: str | None = None,
) -> Response:
    tasks = list(session.scalars(select(Task).where(Task.process_id == process.id).order_by(Task.created_at)))
    events = list(
        session.scalars(
            select(HistoryEvent)
            .where(HistoryEvent.process_id == process.id)
            .order_by(HistoryEvent.at, HistoryEvent.id)
        )
    )
    done_reading(session)
    shape = airflow_data.run_shape(process.dag_id, process.run_id, step_titles(tasks))
    return render(
        request,
        "process.html",
        {
            "user": user_name(user),
            "process": process,
            "tasks": tasks,
            "events": events,
            "names": wording.Names(session),
            "labels": record_labels(process, tasks),
            "route_map": render_route_map(shape.steps, shape.states),
            "started": started is not None,
        },
    )


@router.get("/start")
def catalog(request: Request, user: CurrentUser) -> Response:
    require_read(user)
    return render(
        request, "catalog.html", {"user": user_name(user), "templates": airflow_data.list_templates()}
    )


def _template_or_404(dag_id: str) -> Any:
    try:
        return airflow_data.get_template(dag_id)
    except airflow_data.TemplateNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def _start_page(
    request: Request,
    user: Any,
    template: Any,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    taken: BusinessKeyTaken | None = None,
    status_code: int = 200,
) -> Response:
    with read_session() as session:
        return render(
            request,
            "start.html",
            {
                "user": user_name(user),
                "template": template,
                "errors": errors or {},
                "values": values or {},
                "taken": taken,
                "names": wording.Names(session),
                "csrf": csrf_token(user_name(user), start_purpose(template.dag_id)),
            },
            status_code=status_code,
        )


@router.get("/start/{dag_id}")
def start_form(request: Request, dag_id: str, user: CurrentUser) -> Response:
    require(user, "POST", "RUN", dag_id)
    return _start_page(request, user, _template_or_404(dag_id))


@router.post("/start/{dag_id}")
async def start(request: Request, dag_id: str, user: CurrentUser) -> Response:
    require(user, "POST", "RUN", dag_id)
    data = await form_data(request)
    check_csrf(data.get("csrf"), user_name(user), start_purpose(dag_id))
    template = _template_or_404(dag_id)
    # The warning's button: the person saw the processes with this business key and wants another.
    allow_same_key = data.pop(START_ANOTHER, None) == "yes"
    answers = {k: v for k, v in data.items() if k not in _NON_FIELDS}
    try:
        conf = template.start_form.validate(answers)
    except FormErrors as exc:
        return _start_page(request, user, template, answers, exc.errors, status_code=422)
    conf["requester"] = user_name(user)
    try:
        process = starting.start(template, conf, user_name(user), allow_same_key=allow_same_key)
    except BusinessKeyTaken as exc:
        return _start_page(request, user, template, answers, taken=exc, status_code=409)
    return _see(f"{URL_PREFIX}/processes/{process.id}?started=1")


def _absences_page(
    request: Request,
    user: Any,
    session: Session,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    person = person_of(session, user)
    admin = is_operator(user)
    people = session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.name)).all()
    names = {p.username: p.name for p in people}
    return render(
        request,
        "absences.html",
        {
            "user": user_name(user),
            "person": person,
            "absences": visible_absences(session, person, admin=admin),
            "names": names,
            # Whom the form may record an absence for (the server decides again when it is posted).
            "for_whom": [p for p in people if admin or (person is not None and p.username == person.username)]
            + [
                p
                for p in people
                if not admin and person is not None and p.manager_username == person.username
            ],
            "values": values or {},
            "errors": errors or {},
            "notice": notice,
            "csrf": csrf_token(user_name(user), ABSENCES_PURPOSE),
        },
        status_code=status_code,
    )


@router.get("/absences")
def absences_page(
    request: Request, user: CurrentUser, session: SessionDep, done: str | None = None
) -> Response:
    require_read(user)
    notice = "The absence is recorded." if done == "recorded" else None
    return _absences_page(request, user, session, notice=notice)


@router.post("/absences")
async def record_absence(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    data = await form_data(request)
    check_csrf(data.get("csrf"), user_name(user), ABSENCES_PURPOSE)
    values = {k: v for k, v in data.items() if k != "csrf"}
    try:
        absence = AbsenceForm.from_page(data)
        require_absence_recorder(session, user, absence.person)
        done_reading(session)
        actions.record_absence(absence.spec(), by=user_name(user))
    except FormErrors as exc:
        return _absences_page(request, user, session, values, exc.errors, status_code=422)
    return _see(f"{URL_PREFIX}/absences?done=recorded")
