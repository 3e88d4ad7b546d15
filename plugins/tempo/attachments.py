"""Attachments: metadata in the store, content under ``[tempo] attachments_path``.

Content goes through Airflow's ObjectStoragePath, so the same code writes to a local folder by
default and to S3 or GCS in production. A file is checked before anything is written, then recorded
and written in one transaction, under a name derived from its content hash: a failed write leaves no
row, a failed commit leaves at most an unused file, and the stored name never comes from user input.
Content is read and copied in chunks, never held whole in memory.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from tempo import config
from tempo.forms import MAX_ATTACHMENT_BYTES, size_text
from tempo.store.engine import write_session
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


#: Content is hashed and copied this much at a time: an upload is never held whole in memory.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A received file that may be stored: its content in a (spooled temporary) file, measured."""

    filename: str
    content_type: str
    content: BinaryIO
    size: int
    sha256: str


def received(filename: str, content_type: str, content: BinaryIO) -> Upload:
    """``content`` measured and hashed in chunks; ``AttachmentError`` for what may not be stored
    (empty, or bigger than Tempo stores), found before anything is written."""
    digest, size = hashlib.sha256(), 0
    content.seek(0)
    while chunk := content.read(CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_ATTACHMENT_BYTES:
            raise AttachmentError(too_big(MAX_ATTACHMENT_BYTES))
        digest.update(chunk)
    if not size:
        raise AttachmentError("The file is empty.")
    return Upload(filename, content_type, content, size, digest.hexdigest())


def add_attachment(task_pk: int, *, actor: str, filename: str, content_type: str, data: bytes) -> Attachment:
    upload = received(filename, content_type, io.BytesIO(data))
    with write_session() as session:
        process_id = get_task(session, task_pk).process_id
        attachment = stage(session, process_id, task_pk, actor=actor, upload=upload)
        write_content(attachment, upload)
        return attachment


def add_process_attachment(
    process_id: int, *, actor: str, filename: str, content_type: str, data: bytes
) -> Attachment:
    """A file that belongs to the process rather than one of its tasks (sent with a request)."""
    upload = received(filename, content_type, io.BytesIO(data))
    return store_process_upload(process_id, actor=actor, upload=upload)


def store_process_upload(process_id: int, *, actor: str, upload: Upload) -> Attachment:
    with write_session() as session:
        attachment = stage(session, process_id, None, actor=actor, upload=upload)
        write_content(attachment, upload)
        return attachment


def stage(
    session: Session, process_id: int, task_pk: int | None, *, actor: str, upload: Upload
) -> Attachment:
    """The upload's row and history event in the caller's transaction (flushed: it has its id).

    Its content is written by ``write_content`` once the caller keeps it, still inside the
    transaction: an answer refused after staging leaves neither a row nor a file.
    """
    target = _root() / str(process_id) / upload.sha256
    attachment = Attachment(
        process_id=process_id,
        task_id=task_pk,
        filename=clean_filename(upload.filename),
        content_type=(upload.content_type or "application/octet-stream")[:255],
        size=upload.size,
        sha256=upload.sha256,
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


def write_content(attachment: Attachment, upload: Upload) -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(attachment.storage_uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    upload.content.seek(0)
    with target.open("wb") as handle:
        shutil.copyfileobj(upload.content, handle, CHUNK_BYTES)


def _pending_folder(key: str) -> Any:
    # Beside the processes' folders, which are named by number.
    return _root() / "pending" / key


def write_pending(key: str, upload: Upload) -> None:
    """Keep ``upload`` for a request waiting for its confirmation (``key``: its hash)."""
    target = _pending_folder(key) / upload.sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    upload.content.seek(0)
    with target.open("wb") as handle:
        shutil.copyfileobj(upload.content, handle, CHUNK_BYTES)


@contextmanager
def pending_upload(key: str, file: dict[str, Any]) -> Iterator[Upload]:
    """A file ``write_pending`` kept, as an upload to store (``file``: its recorded metadata)."""
    with (_pending_folder(key) / file["sha256"]).open("rb") as handle:
        yield Upload(file["filename"], file["content_type"], handle, int(file["size"]), file["sha256"])


def forget_pending(key: str) -> None:
    folder = _pending_folder(key)
    if not folder.exists():
        return
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def read_attachment(attachment: Attachment) -> bytes:
    from airflow.sdk import ObjectStoragePath

    with ObjectStoragePath(attachment.storage_uri).open("rb") as handle:
        return handle.read()
