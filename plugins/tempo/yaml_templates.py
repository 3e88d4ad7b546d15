"""Process templates written in YAML, compiled into the same DAGs a Python template would give.

The format is described in ``docs/yaml-templates.md``; ``dags/templates/rma_sales_order.yaml`` is a
complete example. A template is checked in two passes: its shape (pydantic models that forbid unknown
keys), then, once the shape is right, its meaning (step references, branches, loops, form fields, mail
templates). Each pass reports all its problems at once, each naming the file, the line, the step
and the field::

    dags/templates/bad.yaml:14: step 'create_sales_order': sla.due: use a duration such as 8h, 30m or 1d 4h

Each template is loaded by its own small DAG file beside it (``dag = dag_from_yaml(__file__)``):
Airflow records import errors per DAG file and marks every DAG of a failing file stale, so one loader
per template keeps a broken template from taking any other process down.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from tempo.forms import FIELD_TYPES, Form
from tempo.yaml_lines import Where, YamlFileError, message, validate_yaml

if TYPE_CHECKING:
    from airflow.sdk import DAG

_ID = r"^[a-z][a-z0-9_]{0,249}$"
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_ASSIGNEE = re.compile(
    r"^(requester|requester_manager|counterparty_responsible|(person|role|unit):[A-Za-z0-9_.@\-]{1,150})$"
)
#: Trigger rules a step may ask for, in words a process author reads.
TRIGGERS = {"all_success": "all_success", "any_success": "none_failed_min_one_success"}


class TemplateError(YamlFileError):
    """A template that cannot be compiled; ``problems`` holds one line per problem."""


def parse_duration(value: Any) -> timedelta:
    """``"8h"``, ``"1d 4h"``, ``"30m"``, ``"90s"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("use a duration such as 8h, 30m or 1d 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value)) if str(value).strip() else None
        if match is None or not any(match.groups()):
            raise ValueError("use a duration such as 8h, 30m or 1d 4h")
        days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[Any, Field(description="8h, 30m, 1d 4h or seconds")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_duration(value: Any) -> Any:
    if value is not None:
        parse_duration(value)
    return value


class EscalationSpec(_Strict):
    after: Duration
    to: str = "manager"
    reassign: bool = False

    _duration = field_validator("after")(_check_duration)


class SlaSpec(_Strict):
    due: Duration
    remind_before: Duration = None
    repeat_every: Duration = None
    max_reminders: int = Field(default=3, ge=0, le=100)
    escalations: list[EscalationSpec] = Field(default_factory=list)
    expire_after: Duration = None
    on_expiry: str = "fail"
    business_time: bool = True

    _durations = field_validator("due", "remind_before", "repeat_every", "expire_after")(_check_duration)


class EmailClientSpec(_Strict):
    or_attachment: bool = False
    to_field: str | None = None
    subject: str = Field(default="", max_length=200)


class RequiredActionSpec(_Strict):
    email_client: EmailClientSpec


class _StepBase(_Strict):
    id: str = Field(pattern=_ID)
    after: list[str] | None = Field(
        default=None, description="upstream step ids; omitted: the step before it in the file"
    )
    trigger: Literal["all_success", "any_success"] = "all_success"

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class HumanStepSpec(_StepBase):
    kind: Literal["human"]
    title: str = Field(min_length=1, max_length=500)
    instructions: str = ""
    assign: str = Field(pattern=_ASSIGNEE.pattern)
    form: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outcomes: list[str] = Field(default_factory=list)
    branches: dict[str, str | list[str]] = Field(default_factory=dict)
    sla: SlaSpec | None = None
    required_action: RequiredActionSpec | None = None


class NotifyStepSpec(_StepBase):
    kind: Literal["notify"]
    to: list[Annotated[str, Field(pattern=_ASSIGNEE.pattern)]] = Field(min_length=1)
    template: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,100}$")
    context: dict[str, str] = Field(default_factory=dict)

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many_to(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CaseSpec(_Strict):
    equals: Any
    go: str


class ChooseStepSpec(_StepBase):
    """Follow one path depending on a start-form field."""

    kind: Literal["choose"]
    field: str
    cases: list[CaseSpec] = Field(min_length=1)
    otherwise: str


class RecordStepSpec(_StepBase):
    """Write answers of a human step onto the process record (``so_number: form.so_number``)."""

    kind: Literal["record"]
    source: str = Field(alias="from")
    fields: dict[str, str] = Field(min_length=1)


_STEP_KINDS = ("human", "notify", "choose", "record")

StepSpec = Annotated[
    HumanStepSpec | NotifyStepSpec | ChooseStepSpec | RecordStepSpec, Field(discriminator="kind")
]


class TemplateSpec(_Strict):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    owner: str = "tempo"
    business_key: str | None = None
    deadline: Duration = None
    tags: list[str] = Field(default_factory=list)
    start_form: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)

    _deadline = field_validator("deadline")(_check_duration)


# --- reading and checking ---------------------------------------------------------------------------


class _Where(Where):
    """Names a place of a template as ``file:line: step 'id': field``."""

    def __call__(self, loc: tuple[Any, ...], message: str) -> str:
        if len(loc) >= 3 and loc[0] == "steps" and loc[2] in _STEP_KINDS:
            loc = (*loc[:2], *loc[3:])  # pydantic names the kind it tried; the document does not
        return super().__call__(loc, message)

    def field(self, loc: tuple[Any, ...]) -> str:
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            return f"step {self._step_id(loc[1])}: " + (".".join(str(p) for p in loc[2:]) or "(step)")
        return ".".join(str(p) for p in loc) or "(template)"

    def _step_id(self, index: int) -> str:
        steps = self.raw.get("steps") if isinstance(self.raw, dict) else None
        entry = steps[index] if isinstance(steps, list) and index < len(steps) else None
        if isinstance(entry, dict) and entry.get("id"):
            return repr(str(entry["id"]))
        return f"#{index + 1}"


def read_template(path: str | Path, source: str | None = None) -> TemplateSpec:
    """Parse and check a template file; raise ``TemplateError`` listing every problem."""
    path = Path(path)
    source = source or _display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError([f"{source}: cannot read the template: {exc.strerror}"]) from None
    return parse_template(text, source)


def parse_template(text: str, source: str = "<template>") -> TemplateSpec:
    spec, where = validate_yaml(
        text,
        source,
        TemplateSpec,
        TemplateError,
        where=_Where,
        not_a_mapping="a template is a mapping with id, title and steps",
    )
    problems = [where(loc, message) for loc, message in _meaning_problems(spec)]
    if problems:
        raise TemplateError(problems)
    return spec


def _display_name(path: Path) -> str:
    parts = path.resolve().parts
    if "dags" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("dags") :])
    return str(path)


@functools.cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    return TypeAdapter(FIELD_TYPES[kind])


def build_form(
    spec: Mapping[str, Mapping[str, Any]],
) -> tuple[Form | None, list[tuple[tuple[Any, ...], str]]]:
    """A ``Form`` from ``{name: {type: text, ...}}``, or the problems, each at its field's place."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    built = {}
    for name, options in spec.items():
        options = dict(options)
        kind = options.pop("type", None)
        field_cls = FIELD_TYPES.get(str(kind))
        if field_cls is None:
            problems.append(((name, "type"), f"use one of: {', '.join(FIELD_TYPES)}"))
            continue
        known = {f.name for f in fields(field_cls) if f.name != "name"}
        unknown = sorted(set(options) - known)
        if unknown:
            problems.append(
                ((name, unknown[0]), f"not an option of a {kind} field ({', '.join(sorted(known))})")
            )
            continue
        try:
            # The field dataclasses' own annotations check each option's type.
            built[name] = _adapter(field_cls.kind).validate_python(options)
        except ValidationError as exc:
            problems.extend(((name, *error["loc"]), message(error)) for error in exc.errors())
        except (TypeError, re.error) as exc:
            problems.append(((name,), str(exc)))
    if problems:
        return None, problems
    try:
        return Form(**built), []
    except (TypeError, ValueError) as exc:
        return None, [((), str(exc))]


def _meaning_problems(spec: TemplateSpec) -> list[tuple[tuple[Any, ...], str]]:
    problems: list[tuple[tuple[Any, ...], str]] = []
    _, form_problems = build_form(spec.start_form)
    problems += [(("start_form", *loc), msg) for loc, msg in form_problems]
    if spec.business_key is not None and spec.business_key not in spec.start_form:
        problems.append((("business_key",), f"{spec.business_key!r} is not a field of the start form"))

    ids: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        if step.id in ids:
            problems.append((("steps", index, "id"), f"step {step.id!r} is defined twice"))
        ids.setdefault(step.id, index)

    def known_step(loc: tuple[Any, ...], target: str) -> None:
        if target not in ids:
            problems.append((loc, f"no step is called {target!r}"))

    for index, step in enumerate(spec.steps):
        at: tuple[Any, ...] = ("steps", index)
        for n, upstream in enumerate(step.after or []):
            known_step((*at, "after", n), upstream)
            if upstream == step.id:
                problems.append(((*at, "after", n), "a step cannot follow itself"))
        if isinstance(step, HumanStepSpec):
            _, step_form_problems = build_form(step.form)
            problems += [((*at, "form", *loc), msg) for loc, msg in step_form_problems]
            for outcome in step.outcomes:
                if not re.match(r"^[a-z][a-z0-9_]{0,63}$", outcome):
                    problems.append(((*at, "outcomes"), f"outcome {outcome!r} must be lower_snake_case"))
            for outcome, targets in step.branches.items():
                if outcome not in step.outcomes:
                    problems.append(((*at, "branches", outcome), f"{outcome!r} is not one of the outcomes"))
                for target in [targets] if isinstance(targets, str) else targets:
                    known_step((*at, "branches", outcome), target)
            if step.branches and set(step.branches) != set(step.outcomes):
                missing = sorted(set(step.outcomes) - set(step.branches))
                if missing:
                    problems.append(((*at, "branches"), f"name a path for every outcome (missing {missing})"))
            if step.sla is not None:
                problems += [((*at, "sla", *loc), msg) for loc, msg in _sla_problems(step.sla)]
            action = step.required_action
            to_field = action.email_client.to_field if action is not None else None
            if to_field is not None and not to_field.isidentifier():
                problems.append(
                    ((*at, "required_action", "email_client", "to_field"), "must be a field name")
                )
        elif isinstance(step, ChooseStepSpec):
            if step.field not in spec.start_form:
                problems.append(((*at, "field"), f"{step.field!r} is not a field of the start form"))
            for n, case in enumerate(step.cases):
                known_step((*at, "cases", n, "go"), case.go)
            known_step((*at, "otherwise"), step.otherwise)
        elif isinstance(step, RecordStepSpec):
            source = spec.steps[ids[step.source]] if step.source in ids else None
            if not isinstance(source, HumanStepSpec):
                problems.append(((*at, "from"), f"{step.source!r} is not a human step of this template"))
            for name, path in step.fields.items():
                if not _ANSWER_PATH.match(path):
                    problems.append(
                        ((*at, "fields", name), "use form.<field>, outcome, completed_by or completed_at")
                    )
                elif (
                    isinstance(source, HumanStepSpec)
                    and path.startswith("form.")
                    and path[5:] not in source.form
                ):
                    problems.append(
                        ((*at, "fields", name), f"{step.source!r} has no form field {path[5:]!r}")
                    )
        elif isinstance(step, NotifyStepSpec) and not _mail_template_exists(step.template):
            problems.append(
                ((*at, "template"), f"no mail template {step.template!r} in the templates folder")
            )
    if not problems:
        problems += _loops(spec, ids)
    return problems


def _edges(spec: TemplateSpec) -> dict[str, set[str]]:
    """step id -> the step ids that follow it, as ``compile_template`` wires them."""
    following: dict[str, set[str]] = {step.id: set() for step in spec.steps}
    previous: str | None = None
    for step in spec.steps:
        upstream = step.after if step.after is not None else ([previous] if previous else [])
        for up in upstream:
            following[up].add(step.id)
        following[step.id].update(_branch_targets(step))
        previous = step.id
    return following


def _loops(spec: TemplateSpec, ids: dict[str, int]) -> list[tuple[tuple[Any, ...], str]]:
    """A loop, named by its steps: a DAG cannot run one (unroll the rounds instead)."""
    following = _edges(spec)
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "visiting"
        path.append(node)
        for nxt in sorted(following[node]):
            if state.get(nxt) == "visiting":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        path.pop()
        state[node] = "done"
        return None

    for step in spec.steps:
        if step.id not in state and (loop := visit(step.id)):
            # Name the edge that closes the loop: the later step's ``after``, else the earlier one's branch.
            before, closing = spec.steps[ids[loop[-2]]], spec.steps[ids[loop[-1]]]
            if closing.after and before.id in closing.after:
                where: tuple[Any, ...] = ("steps", ids[closing.id], "after", closing.after.index(before.id))
            else:
                where = ("steps", ids[before.id])
            message = f"the steps form a loop ({' -> '.join(loop)}); a DAG cannot loop: unroll the rounds"
            return [(where, message)]
    return []


_ANSWER_PATH = re.compile(r"^(form\.[A-Za-z_][A-Za-z0-9_]*|outcome|completed_by|completed_at)$")


def _sla_problems(sla: SlaSpec) -> list[tuple[tuple[Any, ...], str]]:
    problems: list[tuple[tuple[Any, ...], str]] = []
    for n, level in enumerate(sla.escalations):
        kind, _, value = level.to.partition(":")
        if level.to not in ("manager", "unit_head") and not (kind in ("role", "person") and value):
            problems.append(
                (("escalations", n, "to"), "use manager, unit_head, role:<code> or person:<username>")
            )
    if sla.on_expiry != "fail" and not (sla.on_expiry.startswith("outcome:") and sla.on_expiry[8:]):
        problems.append((("on_expiry",), "use fail or outcome:<name>"))
    return problems


def _mail_template_exists(name: str) -> bool:
    from tempo import config

    return (Path(config.templates_folder()) / "mail" / f"{name}.j2").is_file()


# --- compiling --------------------------------------------------------------------------------------


def _assignment(value: str) -> Any:
    from tempo import assignment

    simple: dict[str, Callable[[], Any]] = {
        "requester": assignment.Requester,
        "requester_manager": assignment.RequesterManager,
        "counterparty_responsible": assignment.CounterpartyResponsible,
    }
    if value in simple:
        return simple[value]()
    kind, _, code = value.partition(":")
    return {"person": assignment.Person, "role": assignment.Role, "unit": assignment.Unit}[kind](code)


def _sla(spec: SlaSpec) -> Any:
    from tempo.sla import SLA, Escalate

    def span(value: Any) -> timedelta | None:
        return parse_duration(value) if value is not None else None

    return SLA(
        due=parse_duration(spec.due),
        remind_before=span(spec.remind_before),
        repeat_every=span(spec.repeat_every),
        max_reminders=spec.max_reminders,
        escalations=tuple(
            Escalate(after=parse_duration(e.after), to=e.to, reassign=e.reassign) for e in spec.escalations
        ),
        expire_after=span(spec.expire_after),
        on_expiry=spec.on_expiry,
        business_time=spec.business_time,
    )


def _choose(on: str, cases: list[tuple[Any, str]], otherwise: str) -> Callable[..., str]:
    def choose(params: dict[str, Any] | None = None, **_: Any) -> str:
        value = (params or {}).get(on)
        for equals, go in cases:
            if value == equals:
                return go
        return otherwise

    return choose


def _record(source: str, paths: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def record_answers(ti: Any = None, **_: Any) -> dict[str, Any]:
        from tempo.steps.record import record

        answer = ti.xcom_pull(task_ids=source) or {}
        facts = {}
        for name, path in paths.items():
            facts[name] = (
                answer.get("form", {}).get(path[5:]) if path.startswith("form.") else answer.get(path)
            )
        record(**facts)
        return facts

    return record_answers


def compile_template(spec: TemplateSpec) -> DAG:
    """The DAG of a checked template (``read_template`` first)."""
    from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator

    from tempo.required_actions import EmailClient
    from tempo.steps.human import HumanStep
    from tempo.steps.notify import NotifyStep
    from tempo.steps.process import process

    start_form, _ = build_form(spec.start_form)
    dag = process(
        spec.id,
        title=spec.title,
        description=spec.description,
        owner=spec.owner,
        business_key=spec.business_key,
        start_form=start_form,
        tags=["yaml", *spec.tags],
        deadline=parse_duration(spec.deadline) if spec.deadline is not None else None,
    )
    tasks: dict[str, Any] = {}
    with dag:
        for step in spec.steps:
            common: dict[str, Any] = {"task_id": step.id, "trigger_rule": TRIGGERS[step.trigger]}
            if isinstance(step, HumanStepSpec):
                form, _ = build_form(step.form)
                action = step.required_action
                tasks[step.id] = HumanStep(
                    title=step.title,
                    instructions=step.instructions,
                    assign_to=_assignment(step.assign),
                    form=form,
                    outcomes=step.outcomes,
                    branches=step.branches or None,
                    sla=_sla(step.sla) if step.sla else None,
                    required_action=EmailClient(**action.email_client.model_dump()) if action else None,
                    **common,
                )
            elif isinstance(step, NotifyStepSpec):
                tasks[step.id] = NotifyStep(
                    to=[_assignment(t) for t in step.to],
                    template=step.template,
                    context=step.context,
                    **common,
                )
            elif isinstance(step, ChooseStepSpec):
                tasks[step.id] = BranchPythonOperator(
                    python_callable=_choose(
                        step.field, [(c.equals, c.go) for c in step.cases], step.otherwise
                    ),
                    **common,
                )
            else:
                tasks[step.id] = PythonOperator(python_callable=_record(step.source, step.fields), **common)
        previous: str | None = None
        for step in spec.steps:
            upstream = step.after if step.after is not None else ([previous] if previous else [])
            for up in upstream:
                tasks[up] >> tasks[step.id]
            for target in _branch_targets(step):
                if tasks[target] not in tasks[step.id].downstream_list:
                    tasks[step.id] >> tasks[target]
            previous = step.id
    return dag


def _branch_targets(step: Any) -> list[str]:
    """Steps a branching step may choose: they must be directly downstream of it."""
    if isinstance(step, ChooseStepSpec):
        return [c.go for c in step.cases] + [step.otherwise]
    if isinstance(step, HumanStepSpec):
        return [
            t
            for targets in step.branches.values()
            for t in ([targets] if isinstance(targets, str) else targets)
        ]
    return []


def dag_from_yaml(loader_file: str | Path, template: str | Path | None = None) -> DAG:
    """The DAG of the template beside a loader DAG file (``x.py`` loads ``x.yaml``).

    Raises ``TemplateError`` naming file, step and field: Airflow shows it as the import error of
    this loader file only.
    """
    loader = Path(loader_file)
    path = loader.with_suffix(".yaml") if template is None else Path(template)
    if not path.is_absolute() and template is not None:
        path = loader.parent / path
    return compile_template(read_template(path))
