"""A local SMTP server that keeps every message: the demo's inbox and the tests' real mail server.

Nothing is relayed. Each message is parsed as MIME, kept in memory, and optionally written to a folder
as ``NNNN.eml`` so a person can open it.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaughtMail:
    envelope_from: str
    envelope_to: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def to(self) -> str:
        return str(self.message["To"] or "")

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""


class CatchingHandler:
    def __init__(self, maildir: str | Path | None = None) -> None:
        self.messages: list[CaughtMail] = []
        self._changed = threading.Condition()
        self.maildir = Path(maildir) if maildir else None
        if self.maildir:
            self.maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        caught = CaughtMail(envelope.mail_from, tuple(envelope.rcpt_tos), message)
        with self._changed:
            self.messages.append(caught)
            number = len(self.messages)
            self._changed.notify_all()
        if self.maildir:
            (self.maildir / f"{number:04d}.eml").write_bytes(envelope.original_content)
        log.info("[tempo] mail %d to %s: %s", number, ", ".join(caught.envelope_to), caught.subject)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float) -> list[CaughtMail]:
        """Block until at least ``count`` messages arrived (or the timeout passed); return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return list(self.messages)


def start(
    host: str = "127.0.0.1", port: int = 0, maildir: str | Path | None = None
) -> tuple[Controller, CatchingHandler]:
    """Start the catcher in a background thread; ``controller.port`` is the bound port."""
    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    handler = CatchingHandler(maildir)
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    return controller, handler


def restarted(controller: Controller) -> Controller:
    """A new running server on the same address and handler (a stopped aiosmtpd server cannot restart)."""
    fresh = Controller(controller.handler, hostname=controller.hostname, port=controller.port)
    fresh.start()
    return fresh


def serve(host: str, port: int, maildir: str | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    controller, _handler = start(host, port, maildir)
    print(
        f"[tempo] mail catcher listening on {host}:{controller.port}"
        + (f", saving to {maildir}" if maildir else ""),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
