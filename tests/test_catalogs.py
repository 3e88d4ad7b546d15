"""The catalogs of customer requests: request types with their own fields, decisions."""

from __future__ import annotations

import os

import pytest

from tempo.catalogs import CatalogError, load_catalog, parse_catalog, with_catalog_choices
from tempo.forms import Choice, Form, FormErrors
from tempo.runs import template_info
from tempo.steps.process import process
from tests.conftest import REPO

GOOD = """
request_types:
  - code: repair
    name: Repair
    specialist_role: customer_service
    executors_role: repair_technician
    fields:
      - {name: serial, type: text, pattern: "SN-\\\\d+"}
decisions:
  - {code: approve, name: "Approve"}
  - {code: deny, name: "Deny"}
"""


def test_the_shipped_catalog_loads():
    catalog = load_catalog(str(REPO / "include" / "catalogs.yaml"))
    warranty = catalog.request_type("warranty_claim")
    assert list(warranty.form().fields) == ["serial_number", "purchase_date"]
    assert warranty.form().validate({"serial_number": "SN-123456", "purchase_date": "2026-01-05"}) == {
        "serial_number": "SN-123456",
        "purchase_date": "2026-01-05",
    }
    with pytest.raises(FormErrors) as bad:
        warranty.form().validate({"serial_number": "123", "purchase_date": "yesterday"})
    assert set(bad.value.errors) == {"serial_number", "purchase_date"}
    assert "refund" in catalog.choices("decisions")
    assert catalog.decision("refund").name == "Refund"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("request_types: [\n", "not valid YAML"),
        ("", "the file is empty"),
        (GOOD.replace("code: repair", "code: Repair"), ":3: request_types.0.code"),
        (GOOD.replace("name: serial", "name: email"), "taken by the request form"),
        (GOOD.replace("type: text", "type: file"), "type must be one of"),
        (GOOD.replace("code: deny", "code: approve"), "duplicate decision code"),
        (GOOD.replace("    executors_role: repair_technician\n", ""), "executors_role: Field required"),
        (GOOD.split("decisions:")[0], "decisions: Field required"),
    ],
    ids=[
        "yaml",
        "empty",
        "code",
        "reserved-field",
        "file-field",
        "duplicate",
        "missing-role",
        "no-decisions",
    ],
)
def test_a_bad_catalog_names_the_line_and_field(text, message):
    with pytest.raises(CatalogError, match=message):
        parse_catalog(text, source="catalogs.yaml")


def test_the_catalog_is_read_again_when_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "catalogs.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("AIRFLOW__TEMPO__CATALOG_FILE", str(path))
    assert load_catalog().choices("decisions") == ["approve", "deny"]
    path.write_text(GOOD.replace("code: deny", "code: maybe"))
    os.utime(path, ns=(1, 2))  # a different mtime even on coarse filesystems
    assert load_catalog().choices("decisions") == ["approve", "maybe"]


def test_a_catalog_choice_is_filled_when_its_task_opens(tmp_path, monkeypatch):
    path = tmp_path / "catalogs.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("AIRFLOW__TEMPO__CATALOG_FILE", str(path))
    with pytest.raises(ValueError, match="or a catalog"):
        Choice()
    form = Form(decision=Choice(catalog="decisions"))
    assert form.schema()["fields"][0]["choices"] == []  # nothing read at declaration
    filled = with_catalog_choices(form)
    assert filled.validate({"decision": "approve"}) == {"decision": "approve"}
    with pytest.raises(FormErrors):
        filled.validate({"decision": "refund"})
    opened = filled.schema()
    assert opened["fields"][0]["choices"] == ["approve", "deny"]
    # The task keeps the choices it opened with, whatever the catalog says later.
    path.write_text(GOOD.replace("code: deny", "code: maybe"))
    os.utime(path, ns=(3, 4))
    assert Form.from_schema(opened).validate({"decision": "deny"}) == {"decision": "deny"}
    with pytest.raises(CatalogError, match="no catalog"):
        with_catalog_choices(Form(x=Choice(catalog="colours")))


def test_a_start_page_offers_the_catalog_choices_of_the_catalog_as_it_is_now(tmp_path, monkeypatch):
    path = tmp_path / "catalogs.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("AIRFLOW__TEMPO__CATALOG_FILE", str(path))
    dag = process("pick", title="Pick", start_form=Form(decision=Choice(catalog="decisions")))
    info = template_info(dag)
    assert info.declared_form.fields["decision"].options() == []
    assert info.start_form.fields["decision"].options() == ["approve", "deny"]
    assert info.start_form.validate({"decision": "deny"}) == {"decision": "deny"}
