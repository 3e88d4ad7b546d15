"""The process wrapper: a normal Airflow DAG that carries a process template's metadata (what it
carries, and how Tempo reads it back, is in ``tempo.runs``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param

from tempo.forms import Form
from tempo.runs import BUSINESS_KEY, FIELD_KEY, PROCESS_TAG


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
