"""The directory, the catalogs and process templates report their problems in one way."""

from __future__ import annotations

import pytest

from tempo.catalogs import CatalogError, parse_catalog
from tempo.directory import DirectoryError, parse_directory
from tempo.yaml_lines import YamlFileError
from tempo.yaml_templates import TemplateError, parse_template

DIRECTORY = "units:\n  - code: sales\n    name: Sales\n    calendar: {timezone: Mars/Olympus}\n"
CATALOG = (
    "request_types:\n"
    "  - code: repair\n    name: Repair\n    specialist_role: a\n    executors_role: b\n"
    "    fields:\n      - {name: email, type: text}\n"
    "decisions:\n  - {code: ok, name: OK}\n"
)
TEMPLATE = """\
id: t
title: T
steps:
  - id: s
    kind: human
    assign_to: {person: ann}
    sla: {due: soon}
"""


@pytest.mark.parametrize(
    ("parse", "text", "error", "where"),
    [
        (parse_directory, DIRECTORY, DirectoryError, "f.yaml:4: units.0.calendar: invalid calendar"),
        (
            parse_catalog,
            CATALOG,
            CatalogError,
            "f.yaml:6: request_types.0.fields: field name 'email'",
        ),
        (parse_template, TEMPLATE, TemplateError, "f.yaml:7: step 's': sla.due: use a duration"),
    ],
    ids=["directory", "catalog", "template"],
)
def test_a_validator_problem_names_file_line_and_field_without_pydantic_prefix(parse, text, error, where):
    with pytest.raises(error) as info:
        parse(text, "f.yaml")
    assert isinstance(info.value, YamlFileError)
    assert any(problem.startswith(where) for problem in info.value.problems), info.value.problems
    assert "Value error" not in str(info.value)


@pytest.mark.parametrize("parse", [parse_directory, parse_catalog, parse_template])
def test_broken_yaml_names_its_line_in_every_loader(parse):
    with pytest.raises(YamlFileError, match=r"^f\.yaml:\d+: not valid YAML"):
        parse("a:\n  - [\nb: c\n", "f.yaml")
