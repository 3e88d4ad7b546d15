"""Tempo's JSON API (``/tempo/api/v1``, described at ``/tempo/openapi.json``).

Invalid input answers 422 with a message per field and changes nothing; acting on a task someone
else already acted on answers 409 (``FormErrors`` and ``TaskConflict``, answered in ``web/app.py``).
Each route's dependencies (``web/policy.py``) load the task and check who may read or act on it;
a write known by the login cookie alone also needs the CSRF token of the page it acts from.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from tempo import actions
from tempo.attachments import AttachmentError, add_attachment, read_attachment
from tempo.forms import FormErrors
from tempo.store.models import MAX_ID, SlaState, TaskStatus
from tempo.web import airflow_data, starting
from tempo.web.common import AbsenceForm, parse_status_filter, person_inbox, read_upload, visible_absences
from tempo.web.policy import (
    ActorDep,
    CommenterDep,
    OpenTaskDep,
    ReadableAttachmentDep,
    ReadableTaskDep,
    SessionDep,
    TaskDep,
    absences_reader,
    api_csrf,
    done_reading,
    person_of,
    require_absence_recorder,
)
from tempo.web.security import CurrentUser, is_operator, require, require_read, user_name

#: Every write needs the page's CSRF token when only the login cookie says who calls (``api_csrf``).
router = APIRouter(prefix="/api/v1", tags=["Tempo"], dependencies=[Depends(api_csrf)])


#: A task's version as a client saw it (bounded like every id: a bigger one is a 422, not a driver error).
Version = Annotated[int, Field(ge=0, le=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    """The start form's answers."""

    conf: dict[str, Any] = Field(default_factory=dict)
    allow_same_key: bool = Field(
        default=False,
        description="start even when a running or finished process of the template has the same "
        "business key (without it such a start answers 409 and starts nothing)",
    )


class CompleteBody(_Body):
    answers: dict[str, Any] = Field(default_factory=dict, description="form field -> value")
    outcome: str | None = None
    expected_version: Version | None = Field(default=None, description="reject if the task changed since")


class ClaimBody(_Body):
    expected_version: Version | None = None


class ClientEmailBody(_Body):
    subject: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20000)


class CommentBody(_Body):
    text: str = Field(min_length=1, max_length=5000)


#: A moment in ISO 8601 with its UTC offset ("2026-03-02T09:00:00+00:00"), as ``datetime.isoformat``.
Moment = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class TaskOut(BaseModel):
    """A task as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Tempo's id of the task (``task_id`` in its paths)")
    process_id: int
    dag_id: str
    run_id: str
    task_id: str = Field(description="the Airflow task (the step)")
    map_index: int
    title: str
    instructions: str
    status: TaskStatus
    assignee: str | None
    candidate_role: str | None
    candidate_unit: str | None
    acting_for: str | None = Field(description="the absent person the assignee holds the task for")
    claimed_by: str | None
    outcomes: list[str]
    form: dict[str, Any] = Field(validation_alias="form_schema", description="the task's form, as stored")
    due_at: Moment | None
    sla_state: SlaState
    outcome: str | None
    result: dict[str, Any] | None
    completed_by: str | None
    completed_at: Moment | None
    version: int


class AbsenceOut(BaseModel):
    """An absence as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    person: str = Field(validation_alias="username")
    deputy: str
    first_day: date
    last_day: date
    starts_at: Moment = Field(description="the first day's start in the person's time zone")
    ends_at: Moment = Field(description="the last day's end in the person's time zone")
    scope: list[str] | None = Field(description="the templates (dag_ids) it covers; null: every process")
    move_tasks: bool
    recorded_by: str | None


class StartedOut(BaseModel):
    dag_id: str
    run_id: str
    process_id: int = Field(description="the new process (its page: ``/tempo/processes/{process_id}``)")


class SameKeyOut(BaseModel):
    """The 409 of a start whose business key is in use: nothing was started."""

    detail: str
    business_key: str
    processes: list[int] = Field(description="the processes with that business key, newest first")


class ClientEmailOut(BaseModel):
    id: int = Field(description="the history event that records the message")
    task_id: int = Field(description="Tempo's id of the task")
    to: str
    subject: str


class CommentOut(BaseModel):
    id: int
    task_id: int = Field(description="Tempo's id of the task")
    author: str
    text: str


class AttachmentOut(BaseModel):
    id: int
    filename: str
    size: int


@router.post(
    "/processes/{dag_id}",
    status_code=201,
    summary="Start a process",
    responses={409: {"model": SameKeyOut, "description": "the business key already has a process"}},
)
def start(dag_id: str, body: StartBody, user: CurrentUser) -> StartedOut:
    require(user, "POST", "RUN", dag_id)
    try:
        template = airflow_data.get_template(dag_id)
    except airflow_data.TemplateNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    conf = template.start_form.validate(body.conf)
    conf["requester"] = user_name(user)
    # A business key in use raises BusinessKeyTaken: 409 with SameKeyOut (web/app.py).
    process = starting.start(template, conf, user_name(user), allow_same_key=body.allow_same_key)
    return StartedOut(dag_id=dag_id, run_id=process.run_id, process_id=process.id)


@router.get("/tasks", summary="My inbox")
def list_tasks(
    user: CurrentUser, session: SessionDep, status_filter: str | None = None, q: str | None = None
) -> list[TaskOut]:
    require_read(user)
    statuses = parse_status_filter(status_filter)
    person = person_of(session, user)
    if person is None:
        return []
    return [TaskOut.model_validate(t) for t in person_inbox(session, person, search=q, statuses=statuses)]


@router.get("/tasks/{task_id}", summary="One task")
def get_one(task: ReadableTaskDep) -> TaskOut:
    return TaskOut.model_validate(task)


@router.post("/tasks/{task_id}/claim", summary="Claim a queued task")
def claim(task: TaskDep, actor: ActorDep, body: ClaimBody) -> TaskOut:
    claimed = actions.claim(task.id, actor=actor.username, expected_version=body.expected_version)
    return TaskOut.model_validate(claimed)


@router.post("/tasks/{task_id}/complete", summary="Answer a task")
def complete(task: OpenTaskDep, actor: ActorDep, body: CompleteBody) -> TaskOut:
    done = actions.complete(
        task.id,
        actor=actor.username,
        answers=body.answers,
        outcome=body.outcome,
        expected_version=body.expected_version,
    )
    return TaskOut.model_validate(done.task)


@router.post("/tasks/{task_id}/email-client", status_code=201, summary="Email the task's client")
def email_client(task: OpenTaskDep, actor: ActorDep, body: ClientEmailBody) -> ClientEmailOut:
    """The required action of steps such as "Preparation of the technical solution"."""
    event = actions.email_client(task.id, actor=actor.username, subject=body.subject, text=body.text)
    return ClientEmailOut(
        id=event.id, task_id=task.id, to=event.details["to"], subject=event.details["subject"]
    )


@router.post("/tasks/{task_id}/comments", status_code=201, summary="Comment on a task")
def add_comment(task: TaskDep, author: CommenterDep, body: CommentBody) -> CommentOut:
    event = actions.comment(task.id, actor=author.username, text=body.text)
    return CommentOut(id=event.id, task_id=task.id, author=author.username, text=event.details["text"])


@router.post("/tasks/{task_id}/attachments", status_code=201, summary="Attach a file to a task")
async def upload(task: TaskDep, actor: ActorDep, file: UploadFile) -> AttachmentOut:
    data = await read_upload(file)
    try:
        attachment = add_attachment(
            task.id,
            actor=actor.username,
            filename=file.filename or "file",
            content_type=file.content_type or "application/octet-stream",
            data=data,
        )
    except AttachmentError as exc:
        raise FormErrors({"file": str(exc)}) from None
    return AttachmentOut(id=attachment.id, filename=attachment.filename, size=attachment.size)


@router.get("/attachments/{attachment_id}", summary="Download an attachment", response_class=Response)
def download(attachment: ReadableAttachmentDep) -> Response:
    return Response(
        read_attachment(attachment),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{attachment.filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/absences", summary="Absences not over yet")
def list_absences(user: CurrentUser, session: SessionDep) -> list[AbsenceOut]:
    """Everyone's for ops and admins; else one's own, those one stands in for, and those of the
    people one manages."""
    require_read(user)
    person = person_of(session, user)
    return [AbsenceOut.model_validate(a) for a in visible_absences(session, person, admin=is_operator(user))]


@router.post(
    "/absences",
    status_code=201,
    summary="Record an absence and its deputy",
    dependencies=[Depends(absences_reader)],
)
def record_absence(body: AbsenceForm, user: CurrentUser, session: SessionDep) -> AbsenceOut:
    """For the person, their manager or an admin (403 for anyone else); a circle of deputies, an
    overlap with the person's own absence or an absence already over is a 422 naming the field."""
    require_absence_recorder(session, user, body.person)
    done_reading(session)
    return AbsenceOut.model_validate(actions.record_absence(body.spec(), by=user_name(user)))
