"""Validation of EPCIS 2.0 JSON / JSON-LD documents against the official GS1 JSON Schema.

The schema ships with the package (`gs1/`) and is registered under its own `$id` and the ref.gs1.org
addresses, so no `$ref` ever leaves the process. `date-time` and `uri` formats are checked (RFC 3339
with a zone; a URI with a scheme), which the schema relies on for "bad date" refusals.

Two validators, one verdict: a document is first checked by a compiled validator (`jsonschema-rs`,
about 40 µs per 100-event document) with the same format checks; only when it finds a problem does the
detailed validator (`jsonschema`, ~1.5 ms per event) run to locate and word every problem. The
detailed validator has the last word: where the compiled one is stricter (`$` in a pattern does not
accept a trailing newline there, as it does in Python's `re`), the document is valid if the detailed
one finds nothing. `tests/test_trace_epcis_schema.py` checks that they agree on the GS1 examples, the
refused documents and thousands of mutated ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from zhongtai.trace.hashing import parse_time

GS1_DIR = Path(__file__).parent / "gs1"
SCHEMA_FILE = GS1_DIR / "EPCIS-JSON-Schema.json"
SCHEMA_ALIASES = (
    "https://ref.gs1.org/standards/epcis/epcis-json-schema.json",
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-json-schema.json",
    "https://ref.gs1.org/standards/epcis/2.0.1/epcis-json-schema.json",
)
MAX_PROBLEMS = 20
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# A URI with a scheme, or a JSON-LD blank node identifier (`_:document1`).
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*|_):[^\s]*$")

_formats = FormatChecker(formats=())


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    parse_time(value)  # raises ValueError for impossible dates (month 13, 30 February)
    return True


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


def _is_date_time_value(value: str) -> bool:
    try:
        return _is_date_time(value)
    except ValueError:
        return False


_formats.checks("date-time", raises=ValueError)(_is_date_time)
_formats.checks("uri")(_is_uri)


@dataclass(frozen=True)
class Problem:
    """One validation problem, located by a JSON pointer into the submitted document."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


@cache
def _fast_validator() -> jsonschema_rs.Draft7Validator:
    """The compiled validator: a yes/no verdict, never fetching anything (every `$ref` is internal)."""
    return jsonschema_rs.Draft7Validator(
        _schema(),
        formats={"date-time": _is_date_time_value, "uri": _is_uri},
        validate_formats=True,
        offline=True,
    )


def is_valid(document: Any) -> bool:
    """The compiled validator's verdict (stricter than or as strict as `validate`, never laxer)."""
    try:
        return bool(_fast_validator().is_valid(document))
    except (ValueError, OverflowError, TypeError):  # a value it cannot convert (an integer beyond 64 bits)
        return False


@cache
def _validator() -> Draft7Validator:
    schema = _schema()
    resource = Resource.from_contents(schema, default_specification=DRAFT7)
    registry: Registry[Any] = Registry().with_resources(
        [(schema["$id"], resource), *((alias, resource) for alias in SCHEMA_ALIASES)]
    )
    return Draft7Validator(schema, registry=registry, format_checker=_formats)


def _leaves(error: Any) -> list[Any]:
    """The most specific errors: `anyOf`/`if-then` failures carry the useful ones as context."""
    if not error.context:
        return [error]
    deepest = max(len(e.absolute_path) for e in error.context)
    if deepest <= len(error.absolute_path):
        return [error]
    return [leaf for e in error.context if len(e.absolute_path) == deepest for leaf in _leaves(e)]


def validate(document: Any) -> list[Problem]:
    """Every problem of the document (at most MAX_PROBLEMS), in document order; empty when valid."""
    if is_valid(document):
        return []
    return locate_problems(document)


def locate_problems(document: Any) -> list[Problem]:
    """The detailed validator's problems, located by JSON pointers (slow; `validate` calls it only for a
    document the compiled validator refuses)."""
    problems: dict[tuple[str, str], Problem] = {}
    for error in _validator().iter_errors(document):
        for leaf in _leaves(error):
            problem = Problem(_pointer(leaf.absolute_path), leaf.message)
            problems.setdefault((problem.pointer, problem.message), problem)
    # `action` and friends fail both an enum and the patterns of conditional branches; the enum
    # message says it all.
    specific = {p.pointer for p in problems.values() if "does not match '^" not in p.message}
    kept = [p for p in problems.values() if p.pointer not in specific or "does not match '^" not in p.message]
    return sorted(kept, key=lambda p: (p.pointer, p.message))[:MAX_PROBLEMS]
