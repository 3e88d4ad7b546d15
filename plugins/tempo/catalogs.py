"""Catalogs of customer requests: request types with their own fields, and the decisions.

One YAML file (``[tempo] catalog_file``, ``include/catalogs.yaml`` by default) says which kinds of
request a counterparty may register, which fields each kind asks for, who handles a new
counterparty of that kind and who is told of each request, and which decisions a specialist may
take. It is read when used and read again when it changes, so editing it needs no restart; a bad
file is refused with the line and field of every problem.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tempo import config
from tempo.forms import FIELD_TYPES, Choice, Form
from tempo.yaml_lines import YamlFileError, validate_yaml

_CODE = r"^[a-z][a-z0-9_]{0,63}$"
#: Fields of the public request form itself; a request type's own fields may not reuse them.
RESERVED_FIELDS = frozenset({"name", "email", "phone", "subject", "description", "attachments", "csrf"})


class CatalogError(YamlFileError):
    """A catalog file that cannot be used; the message names the file, line and field."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequestTypeEntry(_Entry):
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    specialist_role: str = Field(min_length=1, max_length=64)
    executors_role: str = Field(min_length=1, max_length=64)
    fields: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("fields")
    @classmethod
    def _valid_fields(cls, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for item in fields:
            name, kind = item.get("name"), item.get("type")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"field name {name!r} must be lower_snake_case")
            if name in RESERVED_FIELDS:
                raise ValueError(f"field name {name!r} is taken by the request form itself")
            if name in seen:
                raise ValueError(f"duplicate field {name!r}")
            seen.add(name)
            if kind not in FIELD_TYPES or kind == "file":
                raise ValueError(f"field {name!r}: type must be one of {sorted(set(FIELD_TYPES) - {'file'})}")
        try:
            Form.from_schema({"fields": fields})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid field: {exc}") from None
        return fields


class DecisionEntry(_Entry):
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=200)


class CatalogFile(_Entry):
    request_types: list[RequestTypeEntry] = Field(min_length=1)
    decisions: list[DecisionEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> CatalogFile:
        for kind, codes in (
            ("request type", [t.code for t in self.request_types]),
            ("decision", [d.code for d in self.decisions]),
        ):
            dups = sorted({c for c in codes if codes.count(c) > 1})
            if dups:
                raise ValueError(f"duplicate {kind} code(s): {', '.join(dups)}")
        return self


@dataclass(frozen=True)
class RequestType:
    code: str
    name: str
    description: str
    specialist_role: str
    executors_role: str
    field_schema: tuple[dict[str, Any], ...]

    def form(self) -> Form:
        """The type's own fields, as a form (a new one each time: forms are mutable)."""
        return with_catalog_choices(Form.from_schema({"fields": [dict(f) for f in self.field_schema]}))


@dataclass(frozen=True)
class Decision:
    code: str
    name: str


@dataclass(frozen=True)
class Catalog:
    request_types: tuple[RequestType, ...]
    decisions: tuple[Decision, ...]

    def request_type(self, code: str) -> RequestType:
        for request_type in self.request_types:
            if request_type.code == code:
                return request_type
        raise KeyError(code)

    def decision(self, code: str) -> Decision:
        for decision in self.decisions:
            if decision.code == code:
                return decision
        raise KeyError(code)

    def choices(self, name: str) -> list[str]:
        """The codes of a catalog a form field may choose from (``Choice(catalog=...)``)."""
        if name == "decisions":
            return [d.code for d in self.decisions]
        if name == "request_types":
            return [t.code for t in self.request_types]
        raise CatalogError(f"there is no catalog {name!r}; use 'decisions' or 'request_types'")


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    parsed, _ = validate_yaml(text, source, CatalogFile, CatalogError)
    return Catalog(
        request_types=tuple(
            RequestType(
                code=t.code,
                name=t.name,
                description=t.description,
                specialist_role=t.specialist_role,
                executors_role=t.executors_role,
                field_schema=tuple(t.fields),
            )
            for t in parsed.request_types
        ),
        decisions=tuple(Decision(code=d.code, name=d.name) for d in parsed.decisions),
    )


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> Catalog:
    with open(path, encoding="utf-8") as handle:
        return parse_catalog(handle.read(), source=path)


def load_catalog(path: str | None = None) -> Catalog:
    """The catalog of ``[tempo] catalog_file``, parsed again only when the file changed."""
    path = path or config.catalog_file()
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror}") from None
    return _load(path, stat.st_mtime_ns, stat.st_size)


def with_catalog_choices(form: Form) -> Form:
    """A copy of ``form`` with every catalog-backed choice filled in from the catalog as it is now."""
    filled = Form.from_schema(form.schema())
    for spec in filled.fields.values():
        if isinstance(spec, Choice) and spec.catalog and not spec.choices:
            spec.choices = load_catalog().choices(spec.catalog)
    return filled
