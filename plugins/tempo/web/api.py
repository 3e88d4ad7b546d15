"""Tempo's JSON API (``/tempo/api/v1``, described at ``/tempo/openapi.json``).

Invalid input answers 422 with a message per field and changes nothing; acting on a task someone
else already acted on answers 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tempo import actions
from tempo.attachments import AttachmentError, add_attachment, read_attachment
from tempo.forms import FormErrors
from tempo.store.engine import read_session
from tempo.store.models import ACTIVE_TASK_STATUSES, MAX_ID, Attachment, Process
from tempo.store.tasks import TaskConflict
from tempo.web import airflow_data
from tempo.web.common import StoreId, load_task, parse_status_filter, person_inbox, read_upload, task_json
from tempo.web.security import (
    CurrentUser,
    person_of,
    require,
    require_act,
    require_read,
    user_name,
)

router = APIRouter(prefix="/api/v1", tags=["Tempo"])


#: A task's version as a client saw it (bounded like every id: a bigger one is a 422, not a driver error).
Version = Annotated[int, Field(ge=0, le=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    """The start form's answers."""

    conf: dict[str, Any] = Field(default_factory=dict)


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


def field_errors(errors: dict[str, str]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": errors})


def conflict(exc: TaskConflict) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


@router.post("/processes/{dag_id}", status_code=201, summary="Start a process")
def start(dag_id: str, body: StartBody, user: CurrentUser) -> dict[str, Any]:
    require(user, "POST", "RUN", dag_id)
    try:
        template = airflow_data.get_template(dag_id)
    except airflow_data.TemplateNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    try:
        conf = template.start_form.validate(body.conf)
    except FormErrors as exc:
        raise field_errors(exc.errors) from None
    conf["requester"] = user_name(user)
    run_id = airflow_data.start_process(dag_id, conf, user_name(user))
    return {"dag_id": dag_id, "run_id": run_id}


@router.get("/tasks", summary="My inbox")
def list_tasks(
    user: CurrentUser, status_filter: str | None = None, q: str | None = None
) -> list[dict[str, Any]]:
    require_read(user)
    statuses = parse_status_filter(status_filter)
    with read_session() as session:
        person = person_of(session, user)
        if person is None:
            return []
        return [task_json(t) for t in person_inbox(session, person, search=q, statuses=statuses)]


@router.get("/tasks/{task_id}", summary="One task")
def get_one(task_id: StoreId, user: CurrentUser) -> dict[str, Any]:
    with read_session() as session:
        task = load_task(session, task_id)
        require_read(user, task.dag_id)
        return task_json(task)


@router.post("/tasks/{task_id}/claim", summary="Claim a queued task")
def claim(task_id: StoreId, body: ClaimBody, user: CurrentUser) -> dict[str, Any]:
    with read_session() as session:
        task = load_task(session, task_id)
        person = require_act(session, user, task)
    try:
        return task_json(
            actions.claim(task_id, actor=person.username, expected_version=body.expected_version)
        )
    except TaskConflict as exc:
        raise conflict(exc) from None


@router.post("/tasks/{task_id}/complete", summary="Answer a task")
def complete(task_id: StoreId, body: CompleteBody, user: CurrentUser) -> dict[str, Any]:
    with read_session() as session:
        task = load_task(session, task_id)
        if task.status not in ACTIVE_TASK_STATUSES:
            raise conflict(TaskConflict(task_id, f"This task is already {task.status.value}."))
        person = require_act(session, user, task)
    try:
        done = actions.complete(
            task_id,
            actor=person.username,
            answers=body.answers,
            outcome=body.outcome,
            expected_version=body.expected_version,
        )
    except FormErrors as exc:
        raise field_errors(exc.errors) from None
    except TaskConflict as exc:
        raise conflict(exc) from None
    return task_json(done.task)


@router.post("/tasks/{task_id}/email-client", status_code=201, summary="Email the task's client")
def email_client(task_id: StoreId, body: ClientEmailBody, user: CurrentUser) -> dict[str, Any]:
    """The required action of steps such as "Preparation of the technical solution"."""
    with read_session() as session:
        task = load_task(session, task_id)
        if task.status not in ACTIVE_TASK_STATUSES:
            raise conflict(TaskConflict(task_id, f"This task is already {task.status.value}."))
        person = require_act(session, user, task)
    try:
        event = actions.email_client(task_id, actor=person.username, subject=body.subject, text=body.text)
    except FormErrors as exc:
        raise field_errors(exc.errors) from None
    except TaskConflict as exc:
        raise conflict(exc) from None
    return {
        "id": event.id,
        "task_id": task_id,
        "to": event.details["to"],
        "subject": event.details["subject"],
    }


@router.post("/tasks/{task_id}/comments", status_code=201, summary="Comment on a task")
def add_comment(task_id: StoreId, body: CommentBody, user: CurrentUser) -> dict[str, Any]:
    with read_session() as session:
        task = load_task(session, task_id)
        require(user, "PUT", "HITL_DETAIL", task.dag_id)
        person = person_of(session, user)
    if person is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You are not in Tempo's directory.")
    try:
        event = actions.comment(task_id, actor=person.username, text=body.text)
    except FormErrors as exc:
        raise field_errors(exc.errors) from None
    return {"id": event.id, "task_id": task_id, "author": person.username, "text": event.details["text"]}


@router.post("/tasks/{task_id}/attachments", status_code=201, summary="Attach a file to a task")
async def upload(task_id: StoreId, file: UploadFile, user: CurrentUser) -> dict[str, Any]:
    with read_session() as session:
        task = load_task(session, task_id)
        person = require_act(session, user, task)
    data = await read_upload(file)
    try:
        attachment = add_attachment(
            task_id,
            actor=person.username,
            filename=file.filename or "file",
            content_type=file.content_type or "application/octet-stream",
            data=data,
        )
    except AttachmentError as exc:
        raise field_errors({"file": str(exc)}) from None
    return {"id": attachment.id, "filename": attachment.filename, "size": attachment.size}


@router.get("/attachments/{attachment_id}", summary="Download an attachment", response_class=Response)
def download(attachment_id: StoreId, user: CurrentUser) -> Response:
    with read_session() as session:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such attachment.")
        # A file sent with a request belongs to the process, not to a task.
        process = session.get_one(Process, attachment.process_id)
        require_read(user, process.dag_id)
    return Response(
        read_attachment(attachment),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{attachment.filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
