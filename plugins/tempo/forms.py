"""Typed form fields: one definition gives validation, the stored schema and what pages render.

A form is declared in the DAG (``Form(so_number=Text(pattern=r"SO-\\d{6}"))``), stored with the task as
a JSON schema (``Form.schema()``), and rebuilt from that schema wherever an answer is checked
(``Form.from_schema(...)``), so the web, the API and the CLI validate exactly as the DAG declared.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Numbers, ids and dates are read in ASCII digits only: Python's int() and float() also take
# Arabic-Indic or fullwidth digits, which a person did not mean and the pages would show back unchanged.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
_WHOLE = re.compile(r"\+?\d{1,12}", re.ASCII)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# NUL (which PostgreSQL refuses in text and JSON), other control characters but tab and line breaks,
# and lone surrogates (which cannot be encoded to UTF-8 for the store).
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
#: Numbers beyond this lose whole units as floats (2**53); amounts this big are typing mistakes.
NUMBER_LIMIT = 2**53
#: The largest file Tempo stores (``tempo.attachments``); a ``File`` field may allow less. It lives
#: here rather than in ``tempo.attachments`` because DAG files import forms but never the store.
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


def has_unsafe_characters(value: str) -> bool:
    """True when ``value`` holds characters the store cannot keep (NUL, control characters, lone
    surrogates)."""
    return _UNSAFE_CHARACTERS.search(value) is not None


UNSAFE_CHARACTERS_MESSAGE = "Remove the control characters (such as NUL) from the text."


def is_email_address(value: str) -> bool:
    """One address as mail headers can carry it: no line breaks or other control characters (which
    would break the message, or add a header), no list of several."""
    return not has_unsafe_characters(value) and len(value) <= 320 and _EMAIL.fullmatch(value) is not None


def size_text(size: int) -> str:
    """A file size limit as people write it: 20 MB, 512 KB, 1,000 bytes (in units of 1,024)."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor:,} {unit}"
    return f"{size:,} bytes"


#: Where a task's stored form schema keeps its destructive outcomes: outcome -> the field that must
#: give its reason (``HumanStep(destructive_outcomes=...)``).
DESTRUCTIVE_KEY = "destructive_outcomes"


def destructive_outcomes(schema: Mapping[str, Any] | None) -> dict[str, str]:
    """A stored form schema's destructive outcomes, each with the field that gives its reason."""
    return dict((schema or {}).get(DESTRUCTIVE_KEY) or {})


class FormErrors(ValueError):
    """Invalid answers: ``errors`` maps each field name (or ``"_form"``) to a message a person can act on."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class FieldError(ValueError):
    pass


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or value == []


@dataclass
class Field:
    """A form field. ``name`` is given by the ``Form`` it belongs to."""

    kind: ClassVar[str] = "field"

    label: str = ""
    required: bool = True
    help: str = ""
    default: Any = None
    name: str = field(default="", repr=False)

    def schema(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "name"}
        return {"name": self.name, "type": self.kind, **data}

    def clean(self, raw: Any) -> Any:
        if _is_blank(raw):
            if self.required:
                raise FieldError("This field is required.")
            return None
        return self.convert(raw)

    def convert(self, raw: Any) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one value (start forms become Airflow ``Param``s with it)."""
        return {}


@dataclass
class Text(Field):
    kind: ClassVar[str] = "text"

    pattern: str | None = None
    pattern_message: str | None = None
    min_length: int | None = None
    max_length: int = 2000
    multiline: bool = False

    def __post_init__(self) -> None:
        if self.pattern is not None:
            re.compile(self.pattern)

    def convert(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise FieldError("Enter text.")
        if has_unsafe_characters(raw):
            raise FieldError(UNSAFE_CHARACTERS_MESSAGE)
        value = raw.strip()
        if self.min_length is not None and len(value) < self.min_length:
            raise FieldError(f"Enter at least {self.min_length} characters.")
        if len(value) > self.max_length:
            raise FieldError(f"Enter at most {self.max_length} characters.")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise FieldError(self.pattern_message or f"Does not have the expected format ({self.pattern}).")
        return value

    def example(self) -> str | None:
        """A value of the expected format, for the field's placeholder: the first word of
        ``pattern_message`` that matches ``pattern`` ("RMA-12345" in "Use the form RMA-12345.")."""
        if self.pattern is None or not self.pattern_message:
            return None
        for word in self.pattern_message.split():
            word = word.strip(".,;:!?()\"'“”\u2018\u2019«»")
            if word and re.fullmatch(self.pattern, word):
                return word
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$"
        if self.min_length:
            schema["minLength"] = self.min_length
        return schema


@dataclass
class Number(Field):
    kind: ClassVar[str] = "number"

    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False

    def convert(self, raw: Any) -> int | float:
        value: int | float
        if isinstance(raw, bool):
            raise FieldError("Enter a number.")
        if isinstance(raw, int | float):
            value = raw
        elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
            # The stripped text: str.strip() removes more than float() tolerates ("\x1c12").
            value = float(raw.strip())
        else:
            raise FieldError("Enter a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError("Enter a number.")
        if abs(value) > NUMBER_LIMIT:
            raise FieldError(f"Enter a number between {-NUMBER_LIMIT} and {NUMBER_LIMIT}.")
        if self.integer:
            if float(value) != int(value):
                raise FieldError("Enter a whole number.")
            value = int(value)
        if self.minimum is not None and value < self.minimum:
            raise FieldError(f"Must be at least {self.minimum:g}.")
        if self.maximum is not None and value > self.maximum:
            raise FieldError(f"Must be at most {self.maximum:g}.")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass
class Date(Field):
    kind: ClassVar[str] = "date"

    earliest: str | None = None
    latest: str | None = None

    def convert(self, raw: Any) -> str:
        # A datetime is a date too for isinstance, but "2026-01-31T10:00" is not a day.
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            value = raw
        elif isinstance(raw, str) and _ISO_DATE.fullmatch(raw.strip()):
            try:
                value = dt.date.fromisoformat(raw.strip())
            except ValueError:
                raise FieldError("Enter a date as YYYY-MM-DD.") from None
        else:
            raise FieldError("Enter a date as YYYY-MM-DD.")
        if self.earliest and value < dt.date.fromisoformat(self.earliest):
            raise FieldError(f"Must be on or after {self.earliest}.")
        if self.latest and value > dt.date.fromisoformat(self.latest):
            raise FieldError(f"Must be on or before {self.latest}.")
        return value.isoformat()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


@dataclass
class Choice(Field):
    kind: ClassVar[str] = "choice"

    choices: list[str] = field(default_factory=list)
    multiple: bool = False
    #: The choices come from a catalog of ``[tempo] catalog_file`` ("decisions", "request_types"),
    #: filled in by ``catalogs.with_catalog_choices`` when the step opens its task or a start page
    #: reads its template (never when the DAG is parsed), so the catalog can change without touching
    #: the DAG; the task keeps the choices it was opened with. Until then nothing is a valid choice.
    catalog: str | None = None

    def __post_init__(self) -> None:
        if not self.choices and not self.catalog:
            raise ValueError("a Choice needs at least one choice, or a catalog")

    def options(self) -> list[str]:
        """The codes offered (what the page lists, and what an answer may be)."""
        return self.choices

    def convert(self, raw: Any) -> str | list[str]:
        values = raw if isinstance(raw, list) else [raw]
        if not self.multiple and len(values) != 1:
            raise FieldError("Choose one option.")
        options = self.options()
        for value in values:
            if not isinstance(value, str) or value not in options:
                raise FieldError("Choose one of the options offered.")
        return list(dict.fromkeys(values)) if self.multiple else values[0]

    def json_schema(self) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "string"}
        if self.choices:
            item["enum"] = self.choices
        return {"type": "array", "items": item} if self.multiple else item


@dataclass
class Checkbox(Field):
    kind: ClassVar[str] = "checkbox"

    required: bool = False
    default: Any = False

    def clean(self, raw: Any) -> bool:
        # An unticked HTML checkbox sends nothing at all: absent means False.
        value = self.convert(raw)
        if self.required and not value:
            raise FieldError("This box must be ticked.")
        return value

    def convert(self, raw: Any) -> bool:
        if raw is None or raw == "" or raw is False:
            return False
        if raw is True:
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("on", "true", "1", "yes"):
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("off", "false", "0", "no"):
            return False
        raise FieldError("Tick the box or leave it empty.")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass
class Email(Field):
    kind: ClassVar[str] = "email"

    def convert(self, raw: Any) -> str:
        if not isinstance(raw, str) or not is_email_address(raw.strip()):
            raise FieldError("Enter an email address such as name@example.com.")
        return raw.strip()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "email"}


@dataclass
class File(Field):
    """Files are uploaded as attachments; the form value is the list of their attachment ids.

    :param max_bytes: the largest file the field takes (at most ``MAX_ATTACHMENT_BYTES``); an answer
        naming a bigger attachment is refused on the field (``tempo.actions.complete``).
    """

    kind: ClassVar[str] = "file"

    accept: str = ""
    max_bytes: int = MAX_ATTACHMENT_BYTES
    multiple: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.max_bytes <= MAX_ATTACHMENT_BYTES:
            raise ValueError(
                f"a File field's max_bytes must be between 1 and {MAX_ATTACHMENT_BYTES} "
                f"({size_text(MAX_ATTACHMENT_BYTES)}, the largest file Tempo stores)"
            )

    def convert(self, raw: Any) -> list[int]:
        values = raw if isinstance(raw, list) else [raw]
        ids = [self._attachment_id(v) for v in values]
        if not self.multiple and len(ids) > 1:
            raise FieldError("Attach one file only.")
        return ids

    @staticmethod
    def _attachment_id(value: Any) -> int:
        # An attachment id: a whole number, or its digits as sent by a form; nothing else (no True,
        # no 1.5, no "1e3").
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            raise FieldError("Attach a file.")
        from tempo.store.models import MAX_ID  # not at import: DAG files import forms, not the store

        if not 1 <= number <= MAX_ID:
            raise FieldError("Attach a file.")
        return number

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer"}}


FIELD_TYPES: dict[str, type[Field]] = {
    cls.kind: cls for cls in (Text, Number, Date, Choice, Checkbox, Email, File)
}


class Form:
    """An ordered set of named fields: ``Form(so_number=Text(label="S/O number"))``."""

    def __init__(self, **named_fields: Field) -> None:
        self.fields: dict[str, Field] = {}
        for name, spec in named_fields.items():
            if not _NAME.match(name):
                raise ValueError(f"form field name {name!r} must be an identifier")
            if not isinstance(spec, Field):
                raise TypeError(f"form field {name!r} must be a tempo form field, not {type(spec).__name__}")
            spec.name = name
            if not spec.label:
                spec.label = name.replace("_", " ").capitalize()
            self.fields[name] = spec

    def __repr__(self) -> str:
        return f"Form({', '.join(self.fields)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Form) and self.schema() == other.schema()

    def schema(self) -> dict[str, Any]:
        return {"fields": [f.schema() for f in self.fields.values()]}

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any] | None) -> Form:
        form = cls()
        for item in (schema or {}).get("fields", []):
            spec = dict(item)
            kind, name = spec.pop("type"), spec.pop("name")
            field_cls = FIELD_TYPES[kind]
            known = {f.name for f in fields(field_cls)}
            form.fields[name] = field_cls(**{k: v for k, v in spec.items() if k in known}, name=name)
        return form

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Clean every answer, or raise ``FormErrors`` naming each bad field. Unknown fields are errors."""
        errors: dict[str, str] = {}
        clean: dict[str, Any] = {}
        for name in data:
            if name not in self.fields:
                errors[name] = "Unknown field."
        for name, spec in self.fields.items():
            try:
                clean[name] = spec.clean(data.get(name))
            except FieldError as exc:
                errors[name] = str(exc)
        if errors:
            raise FormErrors(errors)
        return clean

    def file_fields(self) -> dict[str, File]:
        return {name: spec for name, spec in self.fields.items() if isinstance(spec, File)}
