from __future__ import annotations

import pytest

from tempo.forms import (
    MAX_ATTACHMENT_BYTES,
    Checkbox,
    Choice,
    Date,
    Email,
    File,
    Form,
    FormErrors,
    Number,
    Text,
    size_text,
)

FORM = Form(
    so_number=Text(label="S/O number", pattern=r"SO-\d{6}", pattern_message="Use SO-123456."),
    note=Text(required=False, max_length=10),
    quantity=Number(minimum=1, maximum=100, integer=True),
    ship_on=Date(earliest="2026-01-01"),
    priority=Choice(choices=["low", "high"]),
    urgent=Checkbox(),
    contact=Email(required=False),
    drawings=File(required=False, multiple=True),
)

VALID = {
    "so_number": "SO-123456",
    "quantity": "3",
    "ship_on": "2026-02-03",
    "priority": "high",
    "urgent": "on",
}


def test_valid_answers_are_cleaned():
    assert FORM.validate(VALID) == {
        "so_number": "SO-123456",
        "note": None,
        "quantity": 3,
        "ship_on": "2026-02-03",
        "priority": "high",
        "urgent": True,
        "contact": None,
        "drawings": None,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("so_number", "12345", "Use SO-123456."),
        ("so_number", "SO-123456 ", None),  # surrounding blanks are trimmed, not an error
        ("so_number", "", "This field is required."),
        ("note", "x" * 11, "at most 10"),
        ("quantity", "1.5", "whole number"),
        ("quantity", "0", "at least 1"),
        ("quantity", "abc", "Enter a number."),
        ("quantity", "nan", "Enter a number."),
        ("ship_on", "2025-12-31", "on or after 2026-01-01"),
        ("ship_on", "03/02/2026", "YYYY-MM-DD"),
        ("priority", "urgent", "one of the options"),
        ("urgent", "maybe", "Tick the box"),
        ("contact", "not-an-email", "email address"),
        ("drawings", ["x"], "Attach a file"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_each_bad_value_is_named(field, value, message):
    answers = {**VALID, field: value}
    if message is None:
        FORM.validate(answers)
        return
    with pytest.raises(FormErrors) as info:
        FORM.validate(answers)
    assert list(info.value.errors) == [field]
    assert message in info.value.errors[field]


def test_unknown_fields_are_rejected():
    with pytest.raises(FormErrors) as info:
        FORM.validate({**VALID, "is_admin": "1"})
    assert info.value.errors == {"is_admin": "Unknown field."}


def test_every_problem_is_reported_at_once():
    with pytest.raises(FormErrors) as info:
        FORM.validate({"quantity": "500"})
    assert set(info.value.errors) == {"so_number", "quantity", "ship_on", "priority"}


def test_schema_round_trip_validates_the_same():
    rebuilt = Form.from_schema(FORM.schema())
    assert rebuilt == FORM
    assert rebuilt.validate(VALID) == FORM.validate(VALID)
    with pytest.raises(FormErrors):
        rebuilt.validate({**VALID, "so_number": "SO-1"})


def test_declaration_mistakes_fail_at_parse_time():
    with pytest.raises(ValueError, match="identifier"):
        Form(**{"bad name": Text()})
    with pytest.raises(TypeError):
        Form(x="text")
    with pytest.raises(ValueError, match="at least one choice"):
        Choice(choices=[])
    with pytest.raises(Exception, match=r"unterminated|missing"):
        Text(pattern="(")
    for too_much in (0, MAX_ATTACHMENT_BYTES + 1):
        with pytest.raises(ValueError, match="max_bytes must be between 1 and"):
            File(max_bytes=too_much)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (MAX_ATTACHMENT_BYTES, "20 MB"),
        (512 * 1024, "512 KB"),
        (1000, "1,000 bytes"),
        (1536 * 1024, "1,536 KB"),
    ],
)
def test_size_limits_read_as_people_write_them(size, text):
    assert size_text(size) == text


def test_required_checkbox_must_be_ticked():
    form = Form(agree=Checkbox(required=True))
    with pytest.raises(FormErrors):
        form.validate({})
    assert form.validate({"agree": True}) == {"agree": True}


def test_a_pattern_field_finds_its_example_in_its_message():
    assert Text(pattern=r"RMA-\d{4,10}", pattern_message="Use the form RMA-12345.").example() == "RMA-12345"
    # An example that does not match the pattern is never offered.
    assert Text(pattern=r"SO-\d{6}", pattern_message="Use the form SO-12.").example() is None
    assert Text(pattern=r"SO-\d{6}").example() is None
    assert Text().example() is None
