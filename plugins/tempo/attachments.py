"""Attachments: metadata in the store, content under ``[tempo] attachments_path``.

Content goes through Airflow's ObjectStoragePath, so the same code writes to a local folder by
default and to S3 or GCS in production. A file is written first and recorded second, under a name
derived from its content hash: a failed write leaves no row, a failed row leaves at most an unused
file, and the stored name never comes from user input.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tempo import config
from tempo.forms import MAX_ATTACHMENT_BYTES, size_text
from tempo.store.engine import read_session, write_session
from tempo.store.models import Attachment
from tempo.store.tasks import get_task, record_event

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class AttachmentError(ValueError):
    pass


def _root() -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(config.attachments_path())


def clean_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", name).strip(" .")[:200]
    return cleaned or "file"


def too_big(max_bytes: int) -> str:
    """The message for a file above ``max_bytes``: Tempo's own limit, or a form field's."""
    return f"Files may be at most {size_text(max_bytes)}."


def check_upload(data: bytes) -> None:
    """Raise ``AttachmentError`` for content that may not be stored (before anything is written)."""
    if not data:
        raise AttachmentError("The file is empty.")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(too_big(MAX_ATTACHMENT_BYTES))


def add_attachment(task_pk: int, *, actor: str, filename: str, content_type: str, data: bytes) -> Attachment:
    check_upload(data)
    with read_session() as session:
        process_id = get_task(session, task_pk).process_id
    return _store(process_id, task_pk, actor=actor, filename=filename, content_type=content_type, data=data)


def add_process_attachment(
    process_id: int, *, actor: str, filename: str, content_type: str, data: bytes
) -> Attachment:
    """A file that belongs to the process rather than one of its tasks (sent with a request)."""
    check_upload(data)
    return _store(process_id, None, actor=actor, filename=filename, content_type=content_type, data=data)


def _store(
    process_id: int, task_pk: int | None, *, actor: str, filename: str, content_type: str, data: bytes
) -> Attachment:
    digest = hashlib.sha256(data).hexdigest()
    target = _root() / str(process_id) / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        handle.write(data)
    with write_session() as session:
        attachment = Attachment(
            process_id=process_id,
            task_id=task_pk,
            filename=clean_filename(filename),
            content_type=(content_type or "application/octet-stream")[:255],
            size=len(data),
            sha256=digest,
            storage_uri=str(target),
            uploaded_by=actor,
        )
        session.add(attachment)
        session.flush()
        record_event(
            session,
            process_id=process_id,
            task_id=task_pk,
            kind="attached",
            actor=actor,
            details={"attachment": attachment.id, "filename": attachment.filename},
        )
        return attachment


def read_attachment(attachment: Attachment) -> bytes:
    from airflow.sdk import ObjectStoragePath

    with ObjectStoragePath(attachment.storage_uri).open("rb") as handle:
        return handle.read()
