"""What a process template's DAG carries, read back, and the process row of each of its runs.

Everything Tempo needs to know about a template travels in places Airflow already serializes, so
the scheduler, the API server and the workers all read it from the serialized DAG:

- the start form becomes the DAG's ``params`` (Airflow's own trigger form renders it too); each
  param's schema keeps the Tempo field under ``x-tempo-field`` and marks the business key;
- the title is the DAG's display name, the description its description, the owner its owner;
- the tag ``tempo`` marks the DAG as a process template.

``process_for_run`` is the one place a process row is made for a run: the listener when the run
starts, the public request page right after it started one, and any task that runs before the
listener got there (``process_of_dag_run``). DAG files import this module (through ``process()``),
so the store is imported only when a row is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tempo.forms import Form

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tempo.store.models import Process

PROCESS_TAG = "tempo"
FIELD_KEY = "x-tempo-field"
BUSINESS_KEY = "x-tempo-business-key"
#: Conf keys Tempo reads besides the start form: who asked, and for which counterparty.
REQUESTER_KEY = "requester"
COUNTERPARTY_KEY = "counterparty"
#: Who Airflow records as having triggered a run from Tempo's public request page, which names its
#: counterparty's address as the requester. No Airflow login may bear this name.
PUBLIC_TRIGGER = "tempo-public-request-page"
#: Runs started on a server, by whoever has its shell (``airflow dags trigger``, ``dag.test()``).
_SERVER_TRIGGERS = frozenset({"cli", "test"})


@dataclass(frozen=True)
class TemplateInfo:
    dag_id: str
    title: str
    description: str
    owner: str
    business_key: str | None
    #: The start form as the DAG declares it (a catalog choice still empty).
    declared_form: Form = field(default_factory=Form)

    @cached_property
    def start_form(self) -> Form:
        """The start form a person fills in: catalog choices filled from the catalog as it is now."""
        from tempo.catalogs import with_catalog_choices

        return with_catalog_choices(self.declared_form)


def is_process(dag: Any) -> bool:
    return dag is not None and PROCESS_TAG in set(getattr(dag, "tags", None) or ())


def template_info(dag: Any) -> TemplateInfo:
    """Read a template's metadata back from a DAG (SDK or serialized; any DAG has a title)."""
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
        declared_form=Form.from_schema({"fields": form_schema}),
    )


def process_title(info: TemplateInfo, data: Mapping[str, Any]) -> str:
    key = data.get(info.business_key) if info.business_key else None
    return f"{info.title} {key}" if key not in (None, "") else info.title


def process_for_run(
    session: Session,
    template: TemplateInfo,
    run_id: str,
    conf: Mapping[str, Any] | None,
    triggered_by: str | None = None,
) -> Process:
    """The process row of a run of ``template``, created once whoever gets there first.

    Its record is the start form's defaults overlaid with the conf the run was started with; the
    requester is the conf's (a start form, the public page) or else the user who triggered the run.
    """
    from tempo.store.processes import ensure_process

    conf = dict(conf or {})
    data: dict[str, Any] = {name: spec.default for name, spec in template.declared_form.fields.items()}
    data.update(conf)
    business_key = data.get(template.business_key) if template.business_key else None
    process, _ = ensure_process(
        session,
        dag_id=template.dag_id,
        run_id=run_id,
        template=template.dag_id,
        title=process_title(template, data),
        business_key=str(business_key) if business_key not in (None, "") else None,
        requester=conf.get(REQUESTER_KEY) or triggered_by,
        counterparty_code=conf.get(COUNTERPARTY_KEY),
        data=data,
    )
    return process


def process_of_dag_run(session: Session, dag: Any, dag_run: Any) -> Process:
    """``process_for_run`` for an Airflow DAG run (``dag`` is missing from a bare task context)."""
    template = (
        template_info(dag) if dag is not None else TemplateInfo(dag_run.dag_id, dag_run.dag_id, "", "", None)
    )
    login = getattr(dag_run, "triggering_user_name", None)
    conf = _named_parties(session, dag_run, dict(getattr(dag_run, "conf", None) or {}), login)
    return process_for_run(session, template, dag_run.run_id, conf, login)


def _named_parties(session: Session, dag_run: Any, conf: dict[str, Any], login: str | None) -> dict[str, Any]:
    """The run's conf with the requester and counterparty it may name.

    A run a login started (Airflow's trigger API or UI, Tempo's start form) names someone else only
    where that login may act for them (``reports.may_act_for``: themself, the people of the units
    they head); otherwise the requester is the login and no counterparty is named. Runs no login
    started (the scheduler, another DAG, Tempo's public request page) and runs started on a server
    are taken as their conf says. A task sees no ``triggered_by``: there a server's run is checked
    too, which only costs it a requester Airflow's CLI named.
    """
    import logging

    from tempo.reports import may_act_for

    triggered_by = getattr(dag_run, "triggered_by", None)
    if (
        login is None
        or login == PUBLIC_TRIGGER
        or getattr(triggered_by, "value", triggered_by) in _SERVER_TRIGGERS
    ):
        return conf
    log = logging.getLogger(__name__)
    requester, counterparty = conf.get(REQUESTER_KEY) or login, conf.get(COUNTERPARTY_KEY)
    if requester != login and not may_act_for(session, login, person=str(requester)):
        log.warning("[tempo] run %s: %r may not start it for %r", dag_run.run_id, login, requester)
        conf[REQUESTER_KEY] = login
    if counterparty is not None and not may_act_for(session, login, counterparty=str(counterparty)):
        log.warning("[tempo] run %s: %r may not name counterparty %r", dag_run.run_id, login, counterparty)
        conf.pop(COUNTERPARTY_KEY)
    return conf
