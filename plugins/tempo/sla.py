"""SLA policies of human steps: when a task is due.

This is the slot a step's ``sla=`` fills; reminders, escalations and working-hours calendars build on
it. A policy is stored with the task as JSON (``to_dict``) so every component reads the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class SLA:
    """``due``: how long the assignee has, counted from the moment the task is created."""

    due: timedelta | None = None

    def __post_init__(self) -> None:
        if self.due is not None and self.due <= timedelta(0):
            raise ValueError("SLA due must be a positive duration")

    def due_at(self, start: datetime) -> datetime | None:
        return start + self.due if self.due is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"due_seconds": self.due.total_seconds() if self.due is not None else None}
