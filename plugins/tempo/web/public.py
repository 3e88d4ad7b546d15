"""Pages for counterparties, who have no login: register a request, follow it, answer its result.

- ``/tempo/request`` lists the request types of the catalog; ``/tempo/request/{type}`` is the form
  of one type: who you are, what you ask, the type's own fields, any number of files. A valid form
  is held (``tempo.public_requests``) and the address it names is emailed a confirmation link; the
  page says "check your mailbox", the same whether the address is known or not. An invalid one
  answers 422 with a message per field and stores nothing. The form carries a signed token (the page
  has no session to protect, but a form that did not come from this page is refused), and each
  client (an IPv4 address, an IPv6 /64) and each email address may register ``[tempo]
  public_requests_per_hour`` requests an hour (429 beyond), counted before the form is read. A
  request bigger than ``[tempo] public_request_max_mb`` is refused (413) without being read whole,
  and its files are spooled to disk, never held in memory.
- ``/tempo/confirm/{token}``: the mailbox confirms. GET shows what will be registered; POST (with
  the page's CSRF token) starts the ``customer_request`` process, once (the run's id is the held
  request's), and emails the request's status link: it is given nowhere else.
- ``/tempo/requests/{token}`` shows a request's stage and history to whoever holds its signed link.
- ``/tempo/respond/{token}``: the counterparty accepts or disputes a result. GET only shows; POST
  (with the page's CSRF token) answers once, a dispute with its claim and files.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from tempo import actions, config, links, public_requests, ratelimit, wording
from tempo.attachments import (
    AttachmentError,
    Upload,
    forget_pending,
    pending_upload,
    received,
    store_process_upload,
)
from tempo.catalogs import CatalogError, RequestType, load_catalog
from tempo.counterparties import email_key
from tempo.forms import Email, Form, FormErrors, Text, size_text
from tempo.mail.outbox import deliver_now
from tempo.runs import PUBLIC_TRIGGER, REQUESTER_KEY, TemplateInfo, process_for_run
from tempo.store.engine import write_session
from tempo.store.models import ACTIVE_TASK_STATUSES, Attachment, HistoryEvent, Process, ProcessStatus, Task
from tempo.store.tasks import TaskConflict
from tempo.web import URL_PREFIX, airflow_data
from tempo.web.common import render
from tempo.web.policy import (
    ALREADY_CONFIRMED,
    LinkRefused,
    PendingRequestDep,
    RespondClaimsDep,
    RespondTaskDep,
    SessionDep,
    StatusProcessDep,
    respond_task,
)
from tempo.web.security import check_csrf, csrf_token

router = APIRouter(include_in_schema=False)

#: The process a public request starts.
REQUEST_DAG_ID = "customer_request"
MAX_FILES = 10
STAGES = {
    None: "Received",
    "accepted": "Accepted",
    "in_work": "In work",
    "done": "Done",
    "cancelled": "Cancelled",
}


def request_form() -> Form:
    """What every request asks, whatever its type (the type's own fields come after)."""
    return Form(
        name=Text(label="Your organisation", max_length=200),
        email=Email(label="Your email", help="We write to you here about this request."),
        subject=Text(label="Subject", max_length=200),
        description=Text(label="What happened, what do you ask", multiline=True, max_length=5000),
    )


def _page_is_open() -> None:
    if config.public_requests_per_hour() <= 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Requests are not taken on this page.")


def _request_type(code: str) -> RequestType:
    try:
        return load_catalog().request_type(code)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such request type.") from None


def _count(bucket: str) -> None:
    """One more request of ``bucket`` this hour; 429 (with ``Retry-After``) beyond the limit."""
    with write_session() as session:
        verdict = ratelimit.hit(session, f"public-request:{bucket}", limit=config.public_requests_per_hour())
    if not verdict.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "Many requests came from this address in the last hour. Please try again later.",
            headers={"Retry-After": str(verdict.retry_after)},
        )


async def _capped_form(request: Request) -> FormData:
    """The posted form, read only up to ``[tempo] public_request_max_mb``: 413 at once when the
    request says it is bigger, and as soon as more arrives when it does not say."""
    cap = config.public_request_max_bytes()
    too_big = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"The request is too big: send at most {size_text(cap)} in all, files included.",
    )
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isascii() or not declared.isdigit() or int(declared) > cap):
        raise too_big
    read = 0
    receive = request.receive

    async def counted() -> Message:
        nonlocal read
        message = await receive()
        read += len(message.get("body", b""))
        if read > cap:
            raise too_big
        return message

    # Files are spooled to temporary files as they arrive, not kept in memory.
    return await Request(request.scope, counted).form()


@router.get("/request")
def request_types(request: Request) -> Response:
    _page_is_open()
    return render(request, "request_types.html", {"catalog": load_catalog()})


def _form_page(
    request: Request,
    request_type: RequestType,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "request_form.html",
        {
            "request_type": request_type,
            "form": request_form(),
            "type_form": request_type.form(),
            "errors": errors or {},
            "values": values or {},
            "max_files": MAX_FILES,
            "csrf": csrf_token("public", f"request:{request_type.code}"),
        },
        status_code=status_code,
    )


@router.get("/request/{type_code}")
def request_page(request: Request, type_code: str) -> Response:
    _page_is_open()
    return _form_page(request, _request_type(type_code))


async def _uploads(form: FormData, name: str, errors: dict[str, str]) -> list[Upload]:
    """The files sent as ``name``, measured and checked where they were spooled; a problem lands in
    ``errors[name]``."""
    files = [f for f in form.getlist(name) if isinstance(f, UploadFile) and f.filename]
    if len(files) > MAX_FILES:
        errors[name] = f"Attach at most {MAX_FILES} files."
        return []
    uploads = []
    for file in files:
        try:
            upload = await run_in_threadpool(
                received, file.filename or "file", file.content_type or "", file.file
            )
        except AttachmentError as exc:
            errors[name] = f"{file.filename}: {exc}"
            return []
        uploads.append(upload)
    return uploads


def _values(form: FormData, skip: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in form:
        if key in skip:
            continue
        items = [v for v in form.getlist(key) if isinstance(v, str)]
        values[key] = items if len(items) > 1 else (items[0] if items else None)
    return values


@router.post("/request/{type_code}")
async def register(request: Request, type_code: str) -> Response:
    _page_is_open()
    request_type = _request_type(type_code)
    # Counted before anything is read: a refused request counts as much as an accepted one.
    _count(ratelimit.network_of(request.client.host if request.client else "unknown"))
    form = await _capped_form(request)
    check_csrf(str(form.get("csrf") or ""), "public", f"request:{request_type.code}")
    values = _values(form, {"csrf", "attachments"})
    base, own = request_form(), request_type.form()
    errors: dict[str, str] = {
        name: "Unknown field." for name in values if name not in base.fields and name not in own.fields
    }
    clean: dict[str, Any] = {}
    params: dict[str, Any] = {}
    try:
        clean = base.validate({k: v for k, v in values.items() if k in base.fields})
    except FormErrors as exc:
        errors.update(exc.errors)
    if clean.get("email") and len(clean["email"]) > 150:
        errors["email"] = "Use an address of at most 150 characters."
    try:
        params = own.validate({k: v for k, v in values.items() if k in own.fields})
    except FormErrors as exc:
        errors.update(exc.errors)
    uploads = await _uploads(form, "attachments", errors)
    if errors:
        return _form_page(request, request_type, errors, values, status.HTTP_422_UNPROCESSABLE_CONTENT)

    _count(f"email:{email_key(clean['email'])}")
    _template()  # nothing is promised while requests cannot be registered
    # Held until the address confirms it: whoever typed it may not own it (docs/security.md).
    with write_session() as session:
        mail = public_requests.hold(
            session,
            request_type=request_type.code,
            type_name=request_type.name,
            form=clean,
            params=params,
            uploads=uploads,
        )
    deliver_now([mail])
    # The same page whether the address is known or not: it tells nobody who our customers are.
    return RedirectResponse(
        f"{URL_PREFIX}/request/{request_type.code}/sent", status_code=status.HTTP_303_SEE_OTHER
    )


def _template() -> TemplateInfo:
    try:
        return airflow_data.get_template(REQUEST_DAG_ID)
    except airflow_data.TemplateNotFound:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Requests cannot be registered at the moment."
        ) from None


@router.get("/request/{type_code}/sent")
def request_sent(request: Request, type_code: str) -> Response:
    _page_is_open()
    _request_type(type_code)
    hours = links.CONFIRM_LINK_MAX_AGE // 3600
    return render(
        request,
        "message.html",
        {
            "title": "Check your mailbox",
            "message": "We have emailed a link to the address you gave. Open it within "
            f"{hours} hours to confirm your request: nothing is registered until you do.",
        },
    )


# --- the mailbox confirms -----------------------------------------------------------------------------


@router.get("/confirm/{token}")
def confirm_page(request: Request, token: str, pending: PendingRequestDep) -> Response:
    request_type = _request_type(pending.request_type)
    return render(
        request,
        "request_confirm.html",
        {
            "request_type": request_type,
            "form": request_form(),
            "type_form": request_type.form(),
            "values": pending.form,
            "params": pending.params,
            "files": pending.files,
            "token": token,
            "csrf": csrf_token("public", f"confirm:{pending.id}"),
        },
    )


@router.post("/confirm/{token}")
async def confirm(request: Request, token: str, pending: PendingRequestDep) -> Response:
    form = await _capped_form(request)
    check_csrf(str(form.get("csrf") or ""), "public", f"confirm:{pending.id}")
    request_type = _request_type(pending.request_type)
    template = _template()
    with write_session() as session:
        if not public_requests.claim(session, pending.id):
            raise LinkRefused(ALREADY_CONFIRMED, status.HTTP_409_CONFLICT)
    fields = pending.form
    conf = {
        "counterparty_name": fields["name"],
        "counterparty_email": fields["email"],
        "request_type": request_type.code,
        "subject": fields["subject"],
        "description": fields["description"],
        "request_params": pending.params,
        # The counterparty asked: its address is the requester (it has no username).
        REQUESTER_KEY: fields["email"],
    }
    # The run's id is the pending request's: whatever happens, it becomes one run at most.
    run_id = public_requests.run_id_of(pending)
    try:
        airflow_data.start_process(REQUEST_DAG_ID, conf, PUBLIC_TRIGGER, run_id=run_id)
    except airflow_data.RunExists:  # confirmed before, however this one got past the claim
        raise LinkRefused(ALREADY_CONFIRMED, status.HTTP_409_CONFLICT) from None
    except BaseException:
        with write_session() as session:
            public_requests.release(session, pending.id)
        raise
    # The process row now (the listener may get there first): the files and the status email need it.
    with write_session() as session:
        process = process_for_run(session, template, run_id, conf, PUBLIC_TRIGGER)
        mail = public_requests.send_status_link(session, pending, process, request_type.name)
    for file in pending.files:
        with pending_upload(pending.key_hash, file) as upload:
            store_process_upload(process.id, actor=fields["email"], upload=upload)
    forget_pending(pending.key_hash)
    deliver_now([mail])
    return render(
        request,
        "message.html",
        {
            "title": "Thank you",
            "message": f"Your request “{fields['subject']}” is registered. We have emailed you the link "
            "to follow it.",
        },
    )


# --- the requester's status page -------------------------------------------------------------------


def _waiting_answer(session: Session, process: Process) -> Task | None:
    """The counterparty's open step of the process, if it has one."""
    if not process.counterparty_code:
        return None
    return session.scalar(
        select(Task).where(
            Task.process_id == process.id,
            Task.assignee == f"counterparty:{process.counterparty_code}",
            Task.status.in_(list(ACTIVE_TASK_STATUSES)),
        )
    )


def _stage_of(process: Process) -> str:
    # A run that failed (a request its type's catalog entry refuses, say) never reaches an end stage.
    if process.status == ProcessStatus.FAILED and process.stage not in ("done", "cancelled"):
        return "Stopped: please contact us"
    return STAGES.get(process.stage, process.stage or "")


@router.get("/requests/{token}")
def request_status(request: Request, process: StatusProcessDep, session: SessionDep) -> Response:
    stages = list(
        session.scalars(
            select(HistoryEvent)
            .where(HistoryEvent.process_id == process.id, HistoryEvent.kind == "stage")
            .order_by(HistoryEvent.at, HistoryEvent.id)
        )
    )
    files = list(session.scalars(select(Attachment).where(Attachment.process_id == process.id)))
    waiting = _waiting_answer(session, process)
    try:
        type_name = load_catalog().request_type(str(process.data.get("request_type"))).name
    except (KeyError, CatalogError):
        type_name = str(process.data.get("request_type") or "")
    return render(
        request,
        "request_status.html",
        {
            "process": process,
            "data": process.data or {},
            "stage": _stage_of(process),
            "stages": [
                (e.at, STAGES.get(e.details.get("to"), e.details.get("to")), e.details.get("note") or "")
                for e in stages
            ],
            "type_name": type_name,
            "files": files,
            "respond": links.respond_link(
                waiting.id, process.counterparty_code or "", signed_at=waiting.created_at
            ).removeprefix(config.base_url())
            if waiting is not None
            else None,
        },
    )


# --- the counterparty's answer to a result -----------------------------------------------------------


def _respond_page(
    request: Request,
    session: Session,
    token: str,
    claims: links.LinkClaims,
    task: Task,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    process = session.get_one(Process, task.process_id)
    if task.status not in ACTIVE_TASK_STATUSES:
        answered = {"accept": "accepted", "dispute": "disputed"}.get(
            task.outcome or "", wording.status_word(task.status).lower()
        )
        return render(
            request,
            "message.html",
            {
                "title": "Thank you",
                "message": f"The result of “{process.data.get('subject', process.title)}” is {answered}.",
            },
            status_code=status_code,
        )
    return render(
        request,
        "respond.html",
        {
            "task": task,
            "process": process,
            "data": process.data or {},
            "token": token,
            "errors": errors or {},
            "values": values or {},
            "status_link": links.request_status_path(process.id),
            "csrf": csrf_token(claims.username, f"respond:{task.id}"),
        },
        status_code=status_code,
    )


@router.get("/respond/{token}")
def respond_page(
    request: Request, token: str, claims: RespondClaimsDep, task: RespondTaskDep, session: SessionDep
) -> Response:
    return _respond_page(request, session, token, claims, task)


@router.post("/respond/{token}")
async def respond(request: Request, token: str, claims: RespondClaimsDep, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf(str(form.get("csrf") or ""), claims.username, f"respond:{claims.task_pk}")
    # The task once the form proved it came from its page (as for the pages of logged-in people).
    task = respond_task(claims, session)
    if task.status not in ACTIVE_TASK_STATUSES:
        return _respond_page(request, session, token, claims, task, status_code=status.HTTP_409_CONFLICT)
    outcome = str(form.get("outcome") or "")
    claim = str(form.get("claim") or "").strip()
    errors: dict[str, str] = {}
    if outcome not in task.outcomes:
        errors["outcome"] = "Accept or dispute the result."
    if outcome == "dispute" and not claim:
        errors["claim"] = "Tell us why you dispute the result."
    uploads = await _uploads(form, "claim_files", errors) if outcome == "dispute" else []
    if errors:
        values = {"claim": claim}
        return _respond_page(
            request, session, token, claims, task, errors, values, status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    # The files become the claim's with the answer, in its transaction: one compare-and-set, one winner.
    answers = {"claim": claim or None} if outcome == "dispute" else {}
    try:
        done = actions.complete(
            task.id,
            actor=claims.username,
            answers=answers,
            outcome=outcome,
            expected_version=task.version,
            uploads={"claim_files": uploads},
        )
    except FormErrors as exc:  # the page again, as the task is now
        refused = respond_task(claims, session)
        values = {"claim": claim}
        return _respond_page(
            request,
            session,
            token,
            claims,
            refused,
            exc.errors,
            values,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    except TaskConflict:  # answered meanwhile: the page says how
        refused = respond_task(claims, session)
        return _respond_page(request, session, token, claims, refused, status_code=status.HTTP_409_CONFLICT)
    return RedirectResponse(
        links.request_status_path(done.task.process_id), status_code=status.HTTP_303_SEE_OTHER
    )
