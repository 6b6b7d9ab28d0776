"""The compiled EPCIS schema validator gives the detailed validator's verdict: on the GS1 examples, on
the refused documents of the capture tests, and on thousands of seeded mutations of the examples it is
never laxer, and `validate` returns exactly the detailed validator's located problems."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_trace_epcis_capture import EXAMPLES, INVALID
from zhongtai.trace import epcis_schema

MUTATIONS = 1500
VALUES: list[Any] = [
    "",
    "x",
    "urn:epc:id:sgtin:0614141.107346.2018",
    "https://id.gs1.org/01/09506000134352/21/1",
    "2005-02-30T20:33:31Z",
    "2005-02-03T20:33:31.116-06:00",
    "2005-02-03T20:33:31",
    "+8:00",
    "+08:00",
    "+08:00\n",
    "ADD",
    "DELETE",
    "OBSERVE",
    "LOOK",
    "ObjectEvent",
    "Sighting",
    "AggregationEvent",
    "TransformationEvent",
    "urn:epcglobal:cbv:bizstep:shipping",
    "https://ns.gs1.org/cbv/x",
    "shipping",
    "gs1:x",
    "_:b1",
    "a b",
    1,
    1.0,
    1.5,
    -1,
    0,
    True,
    None,
    [],
    {},
    ["urn:x"],
    [1],
    {"id": "urn:x"},
    {"epcClass": "urn:x", "quantity": 1},
    "KGM",
    "ab",
    "1.2.3",
    "ff0A",
]
KEYS = ["extra", "example:foo", "action", "type", "bizStep", "ilmd", "quantity", "uom", "eventID", "readPoint"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _mutated(document: dict[str, Any], chooser: random.Random) -> dict[str, Any]:
    result = copy.deepcopy(document)
    for _ in range(chooser.randint(1, 3)):
        path = chooser.choice([p for p in _paths(result) if p])
        parent: Any = result
        for part in path[:-1]:
            parent = parent[part]
        roll = chooser.random()
        if roll < 0.25 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.35 and isinstance(parent, dict):
            parent[chooser.choice(KEYS)] = copy.deepcopy(chooser.choice(VALUES))
        else:
            parent[path[-1]] = copy.deepcopy(chooser.choice(VALUES))
    return result


def _examples() -> list[dict[str, Any]]:
    return [json.loads(Path(path).read_text()) for path in EXAMPLES]


def test_the_gs1_examples_are_valid_for_both() -> None:
    for document in _examples():
        assert epcis_schema.is_valid(document)
        assert epcis_schema.locate_problems(document) == []
        assert epcis_schema.validate(document) == []


@pytest.mark.parametrize("case", list(INVALID))
def test_refused_documents_are_refused_by_both(case: str) -> None:
    document, pointer, _message = INVALID[case]
    assert not epcis_schema.is_valid(document)
    problems = epcis_schema.validate(document)
    assert problems == epcis_schema.locate_problems(document)
    assert any(p.pointer == pointer for p in problems)


def test_mutated_documents_get_the_detailed_verdict() -> None:
    chooser = random.Random(20261122)
    examples = _examples()
    refused = stricter = 0
    for _ in range(MUTATIONS):
        document = _mutated(chooser.choice(examples), chooser)
        detailed = epcis_schema.locate_problems(document)
        fast = epcis_schema.is_valid(document)
        assert not (fast and detailed), f"the compiled validator accepts what the detailed one refuses: {detailed}"
        if not fast and not detailed:
            # Only where Python's `$` accepts a trailing newline (the compiled validator's does not).
            assert "\n" in json.dumps(document).replace("\\n", "\n"), document
            stricter += 1
        assert epcis_schema.validate(document) == detailed
        refused += bool(detailed)
    assert refused > MUTATIONS // 2, "the mutations must mostly break documents"
    assert stricter < MUTATIONS // 20


def test_values_the_compiled_validator_cannot_read_fall_back() -> None:
    document = _examples()[0]
    document["epcisBody"]["eventList"][0]["quantity"] = 2**80  # beyond 64 bits
    assert epcis_schema.validate(document) == epcis_schema.locate_problems(document)
