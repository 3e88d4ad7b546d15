"""YAML process templates: the shipped RMA template compiles to the same process as the Python one;
a bad template fails with errors naming file, line, step and field, and breaks no other DAG."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from tempo.yaml_templates import TemplateError, dag_from_yaml, parse_duration, parse_template, read_template
from tests.conftest import REPO

TEMPLATES = REPO / "dags" / "templates"
RMA_YAML = TEMPLATES / "rma_sales_order.yaml"


def rma() -> dict:
    return yaml.safe_load(RMA_YAML.read_text())


def step(doc: dict, step_id: str) -> dict:
    return next(s for s in doc["steps"] if s["id"] == step_id)


def problems_of(doc: dict) -> str:
    with pytest.raises(TemplateError) as info:
        parse_template(yaml.safe_dump(doc, sort_keys=False), "dags/templates/bad.yaml")
    return str(info.value)


def test_the_yaml_rma_is_the_python_rma():
    import sys

    sys.path.insert(0, str(REPO / "dags"))
    try:
        from rma_sales_order import dag as python_dag
    finally:
        sys.path.remove(str(REPO / "dags"))
    yaml_dag = dag_from_yaml(TEMPLATES / "rma_sales_order.py")
    assert yaml_dag.dag_id == "rma_sales_order_yaml" and "yaml" in yaml_dag.tags

    def shape(dag):
        # The Python template records the S/O number in a TaskFlow task named after its function.
        rename = {"record_so_number": "record"}
        return {
            rename.get(t.task_id, t.task_id): (
                sorted(rename.get(u, u) for u in t.upstream_task_ids),
                str(t.trigger_rule),
            )
            for t in dag.tasks
        }

    assert shape(yaml_dag) == shape(python_dag) | {"record": shape(yaml_dag)["record"]}
    assert set(shape(yaml_dag)) == set(shape(python_dag))
    ours, theirs = yaml_dag.get_task("create_sales_order"), python_dag.get_task("create_sales_order")
    assert ours.task_form_schema() == theirs.task_form_schema()
    assert ours.sla == theirs.sla and ours.assign_to == theirs.assign_to
    assert ours.title == theirs.title and " ".join(ours.instructions.split()) == " ".join(
        theirs.instructions.split()
    )
    assert list(yaml_dag.params) == list(python_dag.params)
    for name in python_dag.params:
        assert yaml_dag.params.get_param(name).schema == python_dag.params.get_param(name).schema


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: step(d, "create_sales_order")["sla"].update(due="eight hours"),
            "step 'create_sales_order': sla.due: use a duration such as 8h",
        ),
        (
            lambda d: step(d, "create_sales_order").update(assign="team:service"),
            "step 'create_sales_order': assign: String should match pattern",
        ),
        (
            lambda d: step(d, "create_sales_order")["form"]["so_number"].update(type="barcode"),
            "step 'create_sales_order': form.so_number.type: use one of: text, number",
        ),
        (
            lambda d: step(d, "create_sales_order")["form"]["so_number"].update(colour="red"),
            "step 'create_sales_order': form.so_number.colour: not an option of a text field",
        ),
        (
            lambda d: step(d, "create_sales_order").update(
                outcomes=["done"], branches={"oops": "tell_requester"}
            ),
            "step 'create_sales_order': branches.oops: 'oops' is not one of the outcomes",
        ),
        (
            lambda d: step(d, "tell_requester").update(after=["nowhere"]),
            "step 'tell_requester': after.0: no step is called 'nowhere'",
        ),
        (lambda d: step(d, "tell_requester").update(kind="telegram"), "step 'tell_requester': kind: "),
        (
            lambda d: step(d, "tell_requester").update(template="no_such_mail"),
            "step 'tell_requester': template: no mail template 'no_such_mail'",
        ),
        (
            lambda d: step(d, "tell_requester").update(subject="hello"),
            "step 'tell_requester': subject: Extra inputs are not permitted",
        ),
        (
            lambda d: step(d, "record_so_number")["fields"].update(so_number="form.po_number"),
            "step 'record_so_number': fields.so_number: 'create_sales_order' has no form field 'po_number'",
        ),
        (
            lambda d: step(d, "check_warranty").update(field="colour"),
            "step 'check_warranty': field: 'colour' is not a field of the start form",
        ),
        (
            lambda d: step(d, "repair_can_start").update(id="tell_requester"),
            "step 'tell_requester': id: step 'tell_requester' is defined twice",
        ),
        (
            lambda d: d.update(business_key="order"),
            "business_key: 'order' is not a field of the start form",
        ),
        (lambda d: d["start_form"]["part"].update(max_length="long"), "start_form.part"),
        (
            lambda d: step(d, "create_sales_order").update(after=["check_warranty", "tell_requester"]),
            "step 'create_sales_order': after.1: the steps form a loop "
            "(create_sales_order -> record_so_number -> tell_requester -> create_sales_order)",
        ),
    ],
    ids=[
        "bad-duration",
        "bad-assignee",
        "unknown-field-type",
        "unknown-field-option",
        "branch-for-unknown-outcome",
        "unknown-upstream",
        "unknown-kind",
        "missing-mail-template",
        "unknown-key",
        "record-unknown-field",
        "choose-unknown-field",
        "duplicate-step",
        "bad-business-key",
        "bad-start-form",
        "loop",
    ],
)
def test_a_bad_template_names_file_step_and_field(mutate, expected):
    doc = rma()
    mutate(doc)
    message = problems_of(doc)
    assert message.startswith("dags/templates/bad.yaml:")
    assert expected in message


def test_every_problem_is_reported_with_its_line():
    doc = rma()
    step(doc, "create_sales_order")["sla"]["due"] = 0
    step(doc, "tell_requester")["to"] = "nobody"
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(TemplateError) as info:
        parse_template(text, "x.yaml")
    assert len(info.value.problems) == 2
    lines = text.splitlines()
    for problem in info.value.problems:
        line = int(problem.split(":")[1])
        assert ("due:" in lines[line - 1]) or ("to:" in lines[line - 1]), (problem, lines[line - 1])


def test_yaml_syntax_errors_and_empty_files_are_reported_with_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nsteps: [\n")
    with pytest.raises(TemplateError, match=r"broken.yaml:\d+: not valid YAML"):
        read_template(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(TemplateError, match=r"empty\.yaml: a template is a mapping"):
        read_template(empty)


@pytest.mark.parametrize(
    ("text", "seconds"), [("8h", 28800), ("1d 4h", 100800), ("30m", 1800), ("90s", 90), (45, 45)], ids=str
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "8 hours", "0h", -5, True], ids=repr)
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_bad_template_breaks_no_other_dag(tmp_path):
    """What the dag-processor does per file (Airflow's DagBag): the broken template's loader fails
    alone, with the template's message; the good template and a Python process still load."""
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    (dags / "templates").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "dealer_purchase.py", dags)
    for name in ("good", "bad"):
        shutil.copy(TEMPLATES / "rma_sales_order.py", dags / "templates" / f"{name}.py")
    good = rma()
    good["id"] = "rma_good"
    bad = copy.deepcopy(good)
    bad["id"] = "rma_bad"
    step(bad, "create_sales_order")["sla"]["due"] = "soon"
    (dags / "templates" / "good.yaml").write_text(yaml.safe_dump(good, sort_keys=False))
    (dags / "templates" / "bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))

    bag = DagBag(dag_folder=str(dags), safe_mode=True)
    assert sorted(bag.dag_ids) == ["dealer_purchase", "rma_good"]
    assert list(bag.import_errors) == [str(Path(dags / "templates" / "bad.py"))]
    error = next(iter(bag.import_errors.values()))
    assert "TemplateError" in error
    assert "templates/bad.yaml:" in error and "step 'create_sales_order': sla.due:" in error


def test_the_cli_checks_templates(tmp_path, capsys):
    from tempo.cli import main

    bad = tmp_path / "bad.yaml"
    doc = rma()
    step(doc, "tell_requester")["to"] = "team:all"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["templates", "check", str(RMA_YAML), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert f"ok: {RMA_YAML} (process rma_sales_order_yaml, 5 steps)" in out
    assert f"error: {bad}:" in err and "step 'tell_requester': to.0:" in err
    assert main(["templates", "check", str(RMA_YAML)]) == 0
