"""Signed action links for people who act from an email, with or without an Airflow login.

A token names one task, one person and one purpose, is HMAC-signed with ``[tempo] secret_key``
(itsdangerous), and expires after ``[tempo] link_max_age``. The token never changes anything by
itself: opening a link shows a page, and only a POST with a CSRF token acts; once the task is closed
the link is useless.

Key rotation: the new key goes into ``secret_key``, the old one into ``previous_secret_keys``, and the
moment of the switch into ``secret_key_rotated_at``. New tokens are always signed with the current
key. A retired key still verifies a token signed before the switch, for ``link_max_age`` after it
(by then every emailed task link it signed has expired anyway; a request's status link lives longer
and stops working then too); a token it signed later is refused, so a leaked old key cannot mint
fresh links. Keys never appear in logs or error messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from tempo import config
from tempo.web import URL_PREFIX

log = logging.getLogger(__name__)

_SALT = "tempo.task-link.v1"
#: "act": a person answers a task; "respond": a counterparty accepts or disputes a result.
PURPOSES = ("act", "respond")
_STATUS_SALT = "tempo.request-status.v1"
#: A requester's status page stays readable for a year: the request may take that long.
STATUS_LINK_MAX_AGE = 365 * 24 * 3600
_CONFIRM_SALT = "tempo.request-confirm.v1"
#: A request sent on the public page waits this long to be confirmed from its mailbox.
CONFIRM_LINK_MAX_AGE = 24 * 3600


class LinkError(ValueError):
    """The link is not valid: tampered with, signed by an unknown key, or malformed."""


class LinkExpired(LinkError):
    pass


@dataclass(frozen=True)
class LinkClaims:
    task_pk: int
    username: str
    purpose: str


def dumps_signed(data: Any, *, salt: str, signed_at: datetime | None = None) -> str:
    """``data`` signed with the current key only, dated now or ``signed_at``: a token shown again
    keeps the age of the first one, so it expires when that one does."""
    if signed_at is None:
        return URLSafeTimedSerializer(config.secret_key(), salt=salt).dumps(data)
    moment = int(signed_at.timestamp())

    class Dated(TimestampSigner):
        def get_timestamp(self) -> int:
            return moment

    return URLSafeTimedSerializer(config.secret_key(), salt=salt, signer=Dated).dumps(data)


def _retired_keys(now: datetime) -> tuple[list[str], datetime | None]:
    """The retired keys still in their grace period, and the moment they were retired."""
    retired = config.previous_secret_keys()
    if not retired:
        return [], None
    rotated_at = config.secret_key_rotated_at()
    if rotated_at is None:
        log.warning(
            "[tempo] previous_secret_keys are ignored: secret_key_rotated_at is not set to a timestamp"
        )
        return [], None
    if now > rotated_at + timedelta(seconds=config.link_max_age()):
        return [], rotated_at
    return retired, rotated_at


def loads_signed(token: str, *, salt: str, max_age: int) -> Any:
    """The data of a token signed by the current key, or by a retired key within its grace period.

    Raises ``SignatureExpired`` for a token older than ``max_age``, ``BadSignature`` otherwise.
    """
    try:
        return URLSafeTimedSerializer(config.secret_key(), salt=salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise
    except BadSignature as current_key_says_no:
        now = datetime.now(UTC)
        retired, rotated_at = _retired_keys(now)
        for key in retired:
            try:
                data, signed_at = URLSafeTimedSerializer(key, salt=salt).loads(
                    token, max_age=max_age, return_timestamp=True
                )
            except SignatureExpired:
                raise
            except BadSignature:
                continue
            assert rotated_at is not None
            if signed_at > rotated_at:
                # Signed with a retired key after it was retired: not one of ours.
                break
            return data
        raise current_key_says_no from None


def sign(task_pk: int, username: str, purpose: str = "act", *, signed_at: datetime | None = None) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return dumps_signed({"t": int(task_pk), "u": username, "p": purpose}, salt=_SALT, signed_at=signed_at)


def verify(token: str, *, expected_purpose: str = "act", max_age: int | None = None) -> LinkClaims:
    try:
        data = loads_signed(
            token, salt=_SALT, max_age=max_age if max_age is not None else config.link_max_age()
        )
    except SignatureExpired:
        raise LinkExpired("This link has expired.") from None
    except BadSignature:
        raise LinkError("This link is not valid.") from None
    if not isinstance(data, dict) or not {"t", "u", "p"} <= data.keys():
        raise LinkError("This link is not valid.")
    if data["p"] != expected_purpose:
        raise LinkError("This link is not meant for this action.")
    return LinkClaims(task_pk=int(data["t"]), username=str(data["u"]), purpose=str(data["p"]))


def task_link(task_pk: int, username: str, purpose: str = "act") -> str:
    """The emailed URL, always built from ``[tempo] base_url`` (never from a request's Host header)."""
    return f"{config.base_url()}{URL_PREFIX}/act/{sign(task_pk, username, purpose)}"


def task_page(task_pk: int) -> str:
    return f"{config.base_url()}{URL_PREFIX}/tasks/{int(task_pk)}"


def attachment_download(attachment_id: int) -> str:
    return f"{config.base_url()}{URL_PREFIX}/api/v1/attachments/{int(attachment_id)}"


def process_page(process_id: int) -> str:
    return f"{config.base_url()}{URL_PREFIX}/processes/{int(process_id)}"


def respond_link(task_pk: int, counterparty_code: str, *, signed_at: datetime | None = None) -> str:
    """The link a counterparty follows to accept or dispute a result (``/tempo/respond/{token}``).

    Offered again (on the request's status page), it is dated when its step opened: showing it
    never makes a fresh one, so it expires ``link_max_age`` after the result was sent.
    """
    token = sign(task_pk, f"counterparty:{counterparty_code}", "respond", signed_at=signed_at)
    return f"{config.base_url()}{URL_PREFIX}/respond/{token}"


def sign_request_status(process_id: int) -> str:
    return dumps_signed({"r": int(process_id)}, salt=_STATUS_SALT)


def verify_request_status(token: str) -> int:
    """The process a requester's status token names; ``LinkError`` when forged or too old.

    The same key rules as every other token: a retired key only vouches for what it signed before
    the switch, and only during the grace period.
    """
    try:
        data = loads_signed(token, salt=_STATUS_SALT, max_age=STATUS_LINK_MAX_AGE)
    except SignatureExpired:
        raise LinkExpired("This link has expired.") from None
    except BadSignature:
        raise LinkError("This link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("r"), int):
        raise LinkError("This link is not valid.")
    return int(data["r"])


def verify_request_confirmation(token: str) -> str:
    """The secret a request's confirmation token carries; ``LinkError`` when forged, for another
    purpose or older than ``CONFIRM_LINK_MAX_AGE``."""
    try:
        data = loads_signed(token, salt=_CONFIRM_SALT, max_age=CONFIRM_LINK_MAX_AGE)
    except SignatureExpired:
        raise LinkExpired("This link has expired.") from None
    except BadSignature:
        raise LinkError("This link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        raise LinkError("This link is not valid.")
    return str(data["c"])


def request_confirmation_link(secret: str) -> str:
    """The link emailed to a public request's address: only its mailbox can confirm the request."""
    return f"{config.base_url()}{URL_PREFIX}/confirm/{dumps_signed({'c': secret}, salt=_CONFIRM_SALT)}"


def request_status_path(process_id: int) -> str:
    """The path of a request's status page (``request_status_link`` without the base URL)."""
    return f"{URL_PREFIX}/requests/{sign_request_status(process_id)}"


def request_status_link(process_id: int) -> str:
    """The requester's read-only status page of a request registered without a login."""
    return f"{config.base_url()}{request_status_path(process_id)}"
