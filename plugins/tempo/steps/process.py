"""The process wrapper: a normal Airflow DAG that carries a process template's metadata.

Everything Tempo needs to know about the template travels in places Airflow already serializes, so
the scheduler, the API server and the workers all read it from the serialized DAG:

- the start form becomes the DAG's ``params`` (Airflow's own trigger form renders it too); each
  param's schema keeps the Tempo field under ``x-tempo-field`` and marks the business key;
- the title is the DAG's display name, the description its description, the owner its owner;
- the tag ``tempo`` marks the DAG as a process template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param

from tempo.forms import Form

PROCESS_TAG = "tempo"
FIELD_KEY = "x-tempo-field"
BUSINESS_KEY = "x-tempo-business-key"
#: Conf keys Tempo reads besides the start form: who asked, and for which counterparty.
REQUESTER_KEY = "requester"
COUNTERPARTY_KEY = "counterparty"
#: Who Airflow records as having triggered a run from Tempo's public request page, which names its
#: counterparty's address as the requester. No Airflow login may bear this name.
PUBLIC_TRIGGER = "tempo-public-request-page"


def process(
    dag_id: str,
    *,
    title: str,
    description: str = "",
    owner: str = "tempo",
    business_key: str | None = None,
    start_form: Form | None = None,
    tags: list[str] | None = None,
    deadline: timedelta | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG for a process template. Use it like ``DAG``: ``with process("rma", title=...) as dag:``.

    Runs start on request (``schedule=None``) unless a schedule is given. With ``deadline``, a run
    still going that long after it was queued emails the owner and the requester's manager
    (an Airflow Deadline Alert; ``owner`` is a Tempo username or unit code).
    """
    form = start_form or Form()
    if business_key is not None and business_key not in form.fields:
        raise ValueError(f"business_key {business_key!r} is not a field of the start form")
    params: dict[str, Param] = {}
    for name, spec in form.fields.items():
        schema = spec.json_schema()
        if not spec.required:
            schema["type"] = [schema.get("type", "string"), "null"]
        extra: dict[str, Any] = {FIELD_KEY: spec.schema(), "title": spec.label}
        if name == business_key:
            extra[BUSINESS_KEY] = True
        default = spec.default
        params[name] = Param(default, description=spec.help or None, **schema, **extra)
    default_args = {"owner": owner, **dag_kwargs.pop("default_args", {})}
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("catchup", False)
    if deadline is not None:
        from tempo.deadlines import deadline_alert

        dag_kwargs["deadline"] = deadline_alert(deadline, owner)
    return DAG(
        dag_id,
        dag_display_name=title,
        description=description or None,
        doc_md=description or None,
        params=params,
        tags=sorted({PROCESS_TAG, *(tags or [])}),
        default_args=default_args,
        **dag_kwargs,
    )


@dataclass(frozen=True)
class TemplateInfo:
    dag_id: str
    title: str
    description: str
    owner: str
    business_key: str | None
    start_form: Form = field(default_factory=Form)


def is_process(dag: Any) -> bool:
    return dag is not None and PROCESS_TAG in set(getattr(dag, "tags", None) or ())


def template_info(dag: Any) -> TemplateInfo:
    """Read a template's metadata back from a DAG (SDK or serialized)."""
    form_schema: list[dict[str, Any]] = []
    business_key = None
    params = dag.params
    for key in params:
        schema = params.get_param(key).schema or {}
        if FIELD_KEY in schema:
            form_schema.append(schema[FIELD_KEY])
        if schema.get(BUSINESS_KEY):
            business_key = key
    owner = getattr(dag, "owner", None) or (getattr(dag, "default_args", None) or {}).get("owner") or ""
    return TemplateInfo(
        dag_id=dag.dag_id,
        title=getattr(dag, "dag_display_name", None) or dag.dag_id,
        description=getattr(dag, "description", None) or "",
        owner=owner,
        business_key=business_key,
        start_form=Form.from_schema({"fields": form_schema}),
    )


def process_title(info: TemplateInfo, data: Mapping[str, Any]) -> str:
    key = data.get(info.business_key) if info.business_key else None
    return f"{info.title} {key}" if key not in (None, "") else info.title
