"""Every form field type under hypothesis: any value a JSON body or an HTML form can carry is either
accepted as a clean, storable answer or refused with a field error, never anything else.

``TEMPO_FUZZ_CASES`` sets the examples per test (a small number in the default suite, 10,000 through
``make fuzz``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempo.forms import (
    NUMBER_LIMIT,
    Checkbox,
    Choice,
    Date,
    Email,
    Field,
    FieldError,
    File,
    Form,
    FormErrors,
    Number,
    Text,
    has_unsafe_characters,
)
from tempo.store.models import MAX_ID

CASES = int(os.environ.get("TEMPO_FUZZ_CASES", "50"))
SUMMARY = os.environ.get("TEMPO_FUZZ_SUMMARY")
FUZZ = settings(
    max_examples=CASES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# What breaks parsers: NUL and control characters, lone surrogates, other scripts' digits,
# exponents, datetimes for dates, overlong numbers.
NASTY = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "\x1b[31m",
        "\u0663",
        "\uff13",
        "\u00b2",
        "1e400",
        "-1e400",
        "nan",
        "inf",
        "9" * 5000,
        "1_000",
        " 12 ",
        "0x10",
        "2026-02-03T10:00:00",
        "2026-02-03 10:00",
        "20260203",
        "2026-W05-2",
        "2026-02-30",
        "0000-01-01",
        "on",
        "off",
        "yes",
        "true",
        "SO-123456",
        "name@example.com",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text()
    | NASTY
    | st.dates()
    | st.datetimes()
)
# JSON-like values (and the date objects a DAG's Python may pass), nested a little.
ANY_VALUE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
# What an HTML form posts: strings, and lists of strings for a field sent several times.
FORM_VALUE = st.one_of(st.text(), NASTY, st.lists(st.text() | NASTY, max_size=4))

FIELDS: dict[str, Field] = {
    "text": Text(),
    "text_pattern": Text(pattern=r"SO-\d{6}", min_length=3, max_length=20),
    "text_optional": Text(required=False, multiline=True),
    "number": Number(),
    "number_range": Number(minimum=-5, maximum=1000.5),
    "number_integer": Number(integer=True, minimum=0, maximum=10**12),
    "date": Date(),
    "date_range": Date(earliest="2026-01-01", latest="2026-12-31"),
    "choice": Choice(choices=["low", "high", "<b>odd</b>"]),
    "choice_multiple": Choice(choices=["a", "b", "c"], multiple=True, required=False),
    "checkbox": Checkbox(),
    "checkbox_required": Checkbox(required=True),
    "email": Email(),
    "file": File(),
    "file_multiple": File(multiple=True, required=False),
}
FORM = Form(**FIELDS)


def check_clean(spec: Field, raw: Any) -> None:
    """``spec.clean(raw)`` answers a storable value or a FieldError with a message; cleaning the
    answer again gives the same answer (the store holds what validation would accept again)."""
    try:
        value = spec.clean(raw)
    except FieldError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message.strip()
        return
    stored = json.dumps(value, allow_nan=False)  # storable as JSON on SQLite and PostgreSQL
    assert not has_unsafe_characters(stored)
    assert spec.clean(value) == value
    if value is None:
        assert not spec.required
    elif isinstance(spec, Text | Email):
        assert isinstance(value, str)
    elif isinstance(spec, Number):
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value) and abs(value) <= NUMBER_LIMIT
        assert spec.minimum is None or value >= spec.minimum
        assert spec.maximum is None or value <= spec.maximum
        assert not spec.integer or isinstance(value, int)
    elif isinstance(spec, Date):
        day = dt.date.fromisoformat(value)
        assert len(value) == 10
        assert spec.earliest is None or day >= dt.date.fromisoformat(spec.earliest)
        assert spec.latest is None or day <= dt.date.fromisoformat(spec.latest)
    elif isinstance(spec, Choice):
        chosen = value if spec.multiple else [value]
        assert chosen and set(chosen) <= set(spec.choices)
    elif isinstance(spec, Checkbox):
        assert isinstance(value, bool)
    elif isinstance(spec, File):
        assert value and all(isinstance(i, int) and 1 <= i <= MAX_ID for i in value)
        assert spec.multiple or len(value) == 1


@pytest.mark.parametrize("name", list(FIELDS), ids=list(FIELDS))
def test_any_value_is_a_clean_answer_or_a_field_error(name):
    spec = FIELDS[name]

    @FUZZ
    @given(ANY_VALUE | FORM_VALUE)
    def check(raw):
        check_clean(spec, raw)

    check()
    record(f"field:{name}")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("text_pattern", st.from_regex(r"SO-[0-9]{6}", fullmatch=True)),
        ("number_range", st.floats(min_value=-5, max_value=1000.5)),
        ("number_integer", st.integers(0, 10**12) | st.integers(0, 10**12).map(str)),
        ("date_range", st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)).map(dt.date.isoformat)),
        ("choice_multiple", st.lists(st.sampled_from(["a", "b", "c"]), min_size=1)),
        ("email", st.from_regex(r"[a-z0-9.]{1,20}@[a-z]{1,10}\.[a-z]{2,5}", fullmatch=True)),
        ("file_multiple", st.lists(st.integers(1, MAX_ID), min_size=1) | st.integers(1, MAX_ID).map(str)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_valid_value_is_accepted(name, valid):
    spec = FIELDS[name]

    @FUZZ
    @given(valid)
    def check(raw):
        value = spec.clean(raw)
        assert spec.clean(value) == value

    check()
    record(f"valid:{name}")


def test_whole_forms_name_every_bad_field():
    """A posted form (any keys, any values): clean answers for exactly the form's fields, or errors
    naming only fields that were sent or that the form has."""

    @FUZZ
    @given(st.dictionaries(st.sampled_from(list(FIELDS)) | st.text(max_size=10), ANY_VALUE | FORM_VALUE))
    def check(data):
        errors: dict[str, str] = {}
        try:
            clean = FORM.validate(data)
        except FormErrors as exc:
            errors = exc.errors
        if errors:
            assert set(errors) <= set(data) | set(FIELDS)
            assert all(isinstance(m, str) and m for m in errors.values())
            return
        assert set(clean) == set(FIELDS)
        assert set(data) <= set(FIELDS)
        json.dumps(clean, allow_nan=False)

    check()
    record("form")


def test_schema_round_trip_validates_alike():
    rebuilt = Form.from_schema(FORM.schema())

    @FUZZ
    @given(st.dictionaries(st.sampled_from(list(FIELDS)), ANY_VALUE | FORM_VALUE))
    def check(data):
        def outcome(form: Form) -> Any:
            try:
                return form.validate(data)
            except FormErrors as exc:
                return exc.errors

        assert outcome(rebuilt) == outcome(FORM)

    check()
    record("round_trip")


def record(test: str) -> None:
    if SUMMARY:
        with Path(SUMMARY).open("a") as out:
            out.write(json.dumps({"test": f"forms:{test}", "cases": CASES, "failures": 0}) + "\n")


# What fuzzing found, each now a field error (a 500 or a wrong answer before).
FOUND = [
    ("text", "SO-123456\x00", "control characters"),  # PostgreSQL refuses NUL in text and JSON
    ("text", "\ud800", "control characters"),  # a lone surrogate cannot be stored as UTF-8
    ("email", "a\x00@b.cc", "email address"),
    ("number", 10**400, "between"),  # float(10**400) overflowed
    ("number", "1" * 400, "Enter a number."),
    ("number_integer", "\u0663", "Enter a number."),  # int() reads Arabic-Indic digits
    ("number", "\uff13", "Enter a number."),
    ("date", "2026-02-03T10:00:00", "YYYY-MM-DD"),  # a datetime is not a day
    ("date", dt.datetime(2026, 2, 3, 10, 0), "YYYY-MM-DD"),  # compared with a date: TypeError
    ("date", "20260203", "YYYY-MM-DD"),
    ("file", True, "Attach a file"),  # int(True) == 1
    ("file", 1.5, "Attach a file"),
    ("file", "\u00b2", "Attach a file"),  # "²".isdigit() but int("²") fails
    ("file", 2**63, "Attach a file"),  # beyond the id column
    ("file", {"id": 1}, "Attach a file"),
]


@pytest.mark.parametrize(
    ("name", "raw", "message"), FOUND, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(FOUND)]
)
def test_what_fuzzing_found_is_a_field_error(name, raw, message):
    with pytest.raises(FieldError, match=message):
        FIELDS[name].clean(raw)


def test_numbers_and_ids_are_read_from_the_trimmed_text():
    """Found by fuzzing: str.strip() removes separators ("\\x1c") that float() and int() refuse, so
    a value that passed the check once raised ValueError when converted."""
    assert FIELDS["number_integer"].clean("\x1c12\x1f") == 12
    assert FIELDS["number"].clean("\x1d2.5") == 2.5
    assert FIELDS["file"].clean("\x1e7") == [7]
