"""How pages and emails name things for the person who reads them: a field's label, not its key;
Yes and No, not ``True`` and ``False``; "Done", not ``success``; a person's, role's, unit's or
counterparty's name, not its code; a history event's details as words, not a Python dict.

The JSON API and CSV keep the codes: programs read them. Both template environments (the pages' and
the emails') register ``FILTERS``; ``Names`` is handed to a template as ``names``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy.orm import Session

from tempo.store.models import Counterparty, Person, Role, Task, Unit

#: What an empty value reads as (the pages' dash for "nothing here").
NOTHING = "\N{EN DASH}"

#: Task, process, outbox and service-level states, as a person says them.
STATUS_WORDS = {
    "open": "Open",
    "claimed": "Claimed",
    "completed": "Completed",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
    "expired": "Expired",
    "running": "Running",
    "success": "Done",
    "failed": "Failed",
    "pending": "Waiting to be sent",
    "sending": "Sending",
    "sent": "Sent",
    "on_time": "On time",
    "due_soon": "Due soon",
    "overdue": "Overdue",
    "escalated": "Escalated",
}

#: History events whose kind does not read as words by itself; the rest read as ``humanize`` says.
EVENT_WORDS = {
    "created": "Task created",
    "process_success": "Process done",
    "process_overdue": "Process past its deadline",
    "data_recorded": "Recorded on the process",
    "stage": "Stage changed",
}

#: Who a task is assigned to, in its store value ``counterparty:<code>``.
COUNTERPARTY_PREFIX = "counterparty:"

#: How a history event's detail keys read in a sentence; a key not here reads as ``humanize`` says.
_DETAIL_WORDS = {
    "to": "to",
    "assignee": "for",
    "role": "queue",
    "unit": "unit",
    "from": "from",
    "filename": "file",
    "reassigned": "reassigned",
}
#: Details that are ids of other rows: nothing a person reads.
_INTERNAL_DETAILS = {"attachment", "message"}


def status_word(code: Any) -> str:
    """``success`` -> "Done"; an enum member or its value; an unknown code humanized."""
    value = str(getattr(code, "value", code) or "")
    return STATUS_WORDS.get(value, humanize(value))


def event_word(kind: str) -> str:
    return EVENT_WORDS.get(kind, humanize(kind))


def humanize(code: str) -> str:
    """A key or code without a label of its own: ``in_warranty`` -> "In warranty"."""
    words = str(code).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def answer(value: Any) -> str:
    """A recorded value as text: Yes/No, lists joined, a mapping as "Label: value; ...", dates in ISO."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "; ".join(f"{humanize(k)}: {answer(v)}" for k, v in value.items()) or NOTHING
    if isinstance(value, list | tuple | set):
        return ", ".join(answer(v) for v in value) or NOTHING
    return str(value)


def _holds_person(key: str) -> bool:
    """Record keys whose values are usernames: the requester, a specialist, whoever did something."""
    return key in ("requester", "responsible") or key.endswith("_by")


class Names:
    """People's, roles', units' and counterparties' names for their codes, each looked up once.

    Without a session (an email rendered outside the store) every code stands for itself, as does
    a code the directory does not know (a deleted person, an email address).
    """

    def __init__(self, session: Session | None) -> None:
        self._session = session
        self._cache: dict[tuple[type, str], str] = {}

    def _name(self, model: type[Person | Role | Unit | Counterparty], code: str | None) -> str:
        if not code:
            return ""
        key = (model, code)
        if key not in self._cache:
            row = cast(
                "Person | Role | Unit | Counterparty | None",
                self._session.get(model, code) if self._session is not None else None,
            )
            self._cache[key] = row.name if row is not None else code
        return self._cache[key]

    def person(self, username: str | None) -> str:
        """A person's name; ``counterparty:<code>`` names the counterparty."""
        if username and username.startswith(COUNTERPARTY_PREFIX):
            return self.counterparty(username.removeprefix(COUNTERPARTY_PREFIX))
        return self._name(Person, username)

    def people(self, usernames: Iterable[str]) -> str:
        return ", ".join(self.person(u) for u in usernames)

    def role(self, code: str | None) -> str:
        return self._name(Role, code)

    def unit(self, code: str | None) -> str:
        return self._name(Unit, code)

    def counterparty(self, code: str | None) -> str:
        return self._name(Counterparty, code)

    def holder(self, task: Task) -> str:
        """Whom a task waits for: its holder, else its queue (a role's, else a unit's)."""
        if task.assignee or task.claimed_by:
            return self.person(task.assignee or task.claimed_by)
        if task.candidate_role:
            return f"{self.role(task.candidate_role)} (queue)"
        if task.candidate_unit:
            return f"{self.unit(task.candidate_unit)} (queue)"
        return ""

    def value(self, key: str, value: Any) -> str:
        """A recorded value under ``key`` as text, people and counterparties by name."""
        if _holds_person(key) and isinstance(value, str):
            return self.person(value)
        if key == "counterparty" and isinstance(value, str):
            return self.counterparty(value)
        return answer(value)

    def record(self, data: Mapping[str, Any], labels: Mapping[str, str]) -> list[tuple[str, str]]:
        """A process record or an answer as (label, text) rows; Tempo's own ``_`` keys left out."""
        return [
            (labels.get(key) or humanize(key), self.value(key, value))
            for key, value in data.items()
            if not key.startswith("_")
        ]

    def details(self, details: Mapping[str, Any]) -> str:
        """A history event's details as one line: "to Ann Lee · queue Customer service"."""
        parts = []
        for key, value in details.items():
            if value is None or key in _INTERNAL_DETAILS:
                continue
            word = _DETAIL_WORDS.get(key, humanize(key).lower())
            if key in ("to", "assignee", "for") and isinstance(value, str):
                text = self.person(value)
            elif key == "to" and isinstance(value, list):
                text = self.people(value)
            elif key == "role":
                text = self.role(value)
            elif key == "unit":
                text = self.unit(value)
            elif key == "fields" and isinstance(value, list):
                text = ", ".join(humanize(v) for v in value)
            else:
                text = answer(value)
            parts.append(f"{word} {text}")
        return " · ".join(parts)


#: The filters both template environments register.
FILTERS = {"status_word": status_word, "event_word": event_word, "answer": answer, "humanize": humanize}
