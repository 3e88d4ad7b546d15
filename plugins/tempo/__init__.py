"""Tempo: business processes with human steps, kept on tempo, as Apache Airflow 3 DAGs.

Everything a DAG author needs comes from here, in one import line::

    from tempo import Form, HumanStep, NotifyStep, Role, Requester, Text, process

Names are imported on first use, so ``import tempo`` stays cheap and free of side effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # process templates and steps
    "process": "tempo.steps.process",
    "HumanStep": "tempo.steps.human",
    "NotifyStep": "tempo.steps.notify",
    "record": "tempo.steps.record",
    "set_stage": "tempo.steps.record",
    "EmailClient": "tempo.required_actions",
    "dag_from_yaml": "tempo.yaml_templates",
    # forms
    "Form": "tempo.forms",
    "Text": "tempo.forms",
    "Number": "tempo.forms",
    "Date": "tempo.forms",
    "Choice": "tempo.forms",
    "Checkbox": "tempo.forms",
    "Email": "tempo.forms",
    "File": "tempo.forms",
    # who does a step / receives a message
    "Person": "tempo.assignment",
    "Role": "tempo.assignment",
    "Unit": "tempo.assignment",
    "Requester": "tempo.assignment",
    "RequesterManager": "tempo.assignment",
    "CounterpartyResponsible": "tempo.assignment",
    "CounterpartyContact": "tempo.assignment",
    "HeadOfUnit": "tempo.assignment",
    "Decide": "tempo.assignment",
    # customer requests: counterparties and catalogs
    "identify_counterparty": "tempo.counterparties",
    "load_catalog": "tempo.catalogs",
    # time
    "SLA": "tempo.sla",
    "SLA_ACTOR": "tempo.sla",
    "Escalate": "tempo.sla",
    "WorkingCalendar": "tempo.working_hours",
}

__all__ = [
    "SLA",
    "SLA_ACTOR",
    "Checkbox",
    "Choice",
    "CounterpartyContact",
    "CounterpartyResponsible",
    "Date",
    "Decide",
    "Email",
    "EmailClient",
    "Escalate",
    "File",
    "Form",
    "HeadOfUnit",
    "HumanStep",
    "NotifyStep",
    "Number",
    "Person",
    "Requester",
    "RequesterManager",
    "Role",
    "Text",
    "Unit",
    "WorkingCalendar",
    "dag_from_yaml",
    "identify_counterparty",
    "load_catalog",
    "process",
    "record",
    "set_stage",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tempo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from tempo.assignment import (
        CounterpartyContact,
        CounterpartyResponsible,
        Decide,
        HeadOfUnit,
        Person,
        Requester,
        RequesterManager,
        Role,
        Unit,
    )
    from tempo.catalogs import load_catalog
    from tempo.counterparties import identify_counterparty
    from tempo.forms import Checkbox, Choice, Date, Email, File, Form, Number, Text
    from tempo.required_actions import EmailClient
    from tempo.sla import SLA, SLA_ACTOR, Escalate
    from tempo.steps.human import HumanStep
    from tempo.steps.notify import NotifyStep
    from tempo.steps.process import process
    from tempo.steps.record import record, set_stage
    from tempo.working_hours import WorkingCalendar
    from tempo.yaml_templates import dag_from_yaml
