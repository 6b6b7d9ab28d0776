"""Canonical EPCIS event hashes, checked against the reference `epcis-event-hash-generator`.

The reference (1.9.3, dev dependency only) departs from the algorithm text in ways pinned here and
described in docs/trace.md ("Event hash: where the reference tool differs"):

1. In JSON input, it writes a bizTransaction/source/destination as the keys happen to be ordered in
   the document (`type` first when `type` comes first); the text (rule 13) puts the type after the
   value. We feed it the value-first key order, under which it follows the text.
2. It places bizTransactionList, sourceList and destinationList in a sorted block with the user
   extensions, after ilmd — so sourceList/destinationList swap when both are present; the text's
   canonical order keeps sourceList before destinationList, and both before ilmd.
3. It leaves a CURIE value such as `gs1:Temperature` unexpanded and writes JSON `true` as `True`.
4. It expands only the prefixes that the document's own `@context` declares, so ILMD keys such as
   `cbvmda:lotNumber` (a prefix of the standard EPCIS 2.0 context) stay unexpanded.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from epcis_event_hash_generator import hash_generator, json_to_py
from pyld import jsonld

from zhongtai.trace.hashing import event_hash_id, namespaces_of, prehash_segments, prehash_string

EXAMPLES = sorted(Path(__file__).resolve().parent.joinpath("data/gs1/examples").glob("*.jsonld"))
assert len(EXAMPLES) == 6, "the GS1 example documents ship with the tests (tests/data/gs1)"
CONTEXT = json.loads((Path(__file__).parents[1] / "src/zhongtai/trace/gs1/epcis-context.jsonld").read_text())
NS = {"example": "http://ns.example.com/epcis/"}


def _local_context_loader(url: str, options: Any = None) -> dict[str, Any]:
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": CONTEXT}


def _value_first(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for name, key in (
        ("bizTransactionList", "bizTransaction"),
        ("sourceList", "source"),
        ("destinationList", "destination"),
    ):
        if name in event:
            event[name] = [{key: e[key], **({"type": e["type"]} if "type" in e else {})} for e in event[name]]
    return event


def reference_prehashes(document: dict[str, Any]) -> list[str]:
    jsonld.set_document_loader(_local_context_loader)
    json_to_py._namespaces.clear()  # the reference keeps the prefixes of every document it read
    document = copy.deepcopy(document)
    document["epcisBody"]["eventList"] = [_value_first(e) for e in document["epcisBody"]["eventList"]]
    events = json_to_py.event_list_from_epcis_document_json(document)
    prehashes: list[str] = hash_generator.derive_prehashes_from_events(events)
    return prehashes


def _document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", NS],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-05-01T00:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def _reference_order(event: dict[str, Any], namespaces: dict[str, str]) -> str:
    """Our segments in the reference's order (difference 2 above)."""
    segments = prehash_segments(event, namespaces)
    moved = {"bizTransactionList", "sourceList", "destinationList", "extensions"}
    head = "".join(text for name, text in segments if name not in moved)
    tail = sorted(text for name, text in segments if name in moved and name != "extensions")
    extensions = [text for name, text in segments if name == "extensions"]
    return head + "".join(sorted(tail + extensions)) if not extensions else head + "".join(sorted([*tail, *extensions]))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_gs1_example_hashes_as_the_reference(path: Path) -> None:
    document = json.loads(path.read_text())
    namespaces = namespaces_of(document["@context"])
    expected = reference_prehashes(document)
    for event, reference in zip(document["epcisBody"]["eventList"], expected, strict=True):
        ours = prehash_string(event, namespaces)
        if "sourceList" in event and "destinationList" in event:
            assert ours != reference  # difference 2: the reference swaps them
            assert _reference_order(event, namespaces) == reference
        else:
            assert ours == reference


def test_example_9_6_2_prehash_keeps_source_before_destination() -> None:
    document = json.loads(next(p for p in EXAMPLES if "9.6.2" in p.name).read_text())
    ours = prehash_string(document["epcisBody"]["eventList"][0], namespaces_of(document["@context"]))
    assert ours.index("sourceList") < ours.index("destinationList") < ours.index("{http://ns.example.com/epcis/}")


COMMISSIONING = {
    "type": "ObjectEvent",
    "eventTime": "2024-05-01T08:00:00.123456+08:00",
    "eventTimeZoneOffset": "+08:00",
    "epcList": ["urn:epc:id:sgtin:9506000.013435.SERIAL1", "urn:epc:id:sgtin:9506000.013435.SERIAL2"],
    "action": "ADD",
    "bizStep": "commissioning",
    "disposition": "active",
    "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.LINE1"},
    "ilmd": {"example:lot": "L2405", "example:bestBefore": "2026-05-01", "example:line": {"example:shift": "B"}},
    "example:operator": "张三",
}


def _with_digital_links(event: dict[str, Any]) -> dict[str, Any]:
    linked = copy.deepcopy(event)
    linked["epcList"] = [
        "https://scan.brand.example/01/09506000134352/21/SERIAL2",
        "https://scan.brand.example/01/9506000134352/10/L2405/21/SERIAL1?17=260501",
    ]
    linked["readPoint"] = {"id": "https://id.gs1.org/414/9506000000015/254/LINE1"}
    return linked


CUSTOM_EVENTS = {
    "commissioning with ILMD and a nested extension": COMMISSIONING,
    "the same with Digital Links from another host": _with_digital_links(COMMISSIONING),
    "aggregation into an SSCC": {
        "type": "AggregationEvent",
        "eventTime": "2024-05-01T09:00:00Z",
        "eventTimeZoneOffset": "+08:00",
        "parentID": "urn:epc:id:sscc:9506000.0000000001",
        "childEPCs": ["urn:epc:id:sgtin:9506000.013435.B", "urn:epc:id:sgtin:9506000.013435.A"],
        "action": "ADD",
        "bizStep": "urn:epcglobal:cbv:bizstep:packing",
        "disposition": "container_closed",
        "bizLocation": {"id": "urn:epc:id:sgln:9506000.00001.0"},
    },
    "transaction with quantities and business transactions": {
        "type": "TransactionEvent",
        "eventTime": "2024-05-02T10:00:00.5+08:00",
        "eventTimeZoneOffset": "+08:00",
        "parentID": "urn:epc:id:sscc:9506000.0000000001",
        "epcList": ["urn:epc:id:sgtin:9506000.013435.A"],
        "quantityList": [{"epcClass": "urn:epc:class:lgtin:9506000.013435.L2405", "quantity": 12.50, "uom": "KGM"}],
        "action": "ADD",
        "bizStep": "shipping",
        "bizTransactionList": [
            {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:9506000000016:PO-1"},
            {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:9506000000016:DA-7"},
        ],
    },
    "association": {
        "type": "AssociationEvent",
        "eventTime": "2024-05-03T10:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "parentID": "urn:epc:id:grai:4012345.55555.987",
        "childEPCs": ["urn:epc:id:giai:4000001.12345"],
        "action": "ADD",
        "bizStep": "assembling",
        "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"},
    },
    "sensor readings": {
        "type": "ObjectEvent",
        "eventTime": "2024-05-04T10:00:00Z",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sscc:9506000.0000000001"],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "sensorElementList": [
            {
                "sensorMetadata": {"time": "2024-05-04T09:59:00+08:00", "deviceID": "urn:epc:id:giai:4000001.111"},
                "sensorReport": [
                    {"type": "https://gs1.org/voc/Temperature", "value": 26.0, "uom": "CEL"},
                    {"type": "https://gs1.org/voc/RelativeHumidity", "value": 50.25, "uom": "A93"},
                ],
            }
        ],
    },
}


@pytest.mark.parametrize("name", list(CUSTOM_EVENTS))
def test_own_events_hash_as_the_reference(name: str) -> None:
    event = CUSTOM_EVENTS[name]
    [reference] = reference_prehashes(_document(event))
    assert prehash_string(event, NS) == reference


def test_urn_and_digital_link_forms_of_one_event_have_one_hash() -> None:
    linked = _with_digital_links(COMMISSIONING)
    assert event_hash_id(COMMISSIONING, NS) == event_hash_id(linked, NS)
    assert reference_prehashes(_document(COMMISSIONING)) == reference_prehashes(_document(linked))


def test_hash_format_and_what_it_ignores() -> None:
    hash_id = event_hash_id(COMMISSIONING, NS)
    assert hash_id.startswith("ni:///sha-256;")
    assert hash_id.endswith("?ver=CBV2.0")
    assert len(hash_id.split(";")[1].split("?")[0]) == 64
    decorated = {
        "eventID": "urn:uuid:6f1a3b0e-0000-4000-8000-000000000001",
        "recordTime": "2030-01-01T00:00:00Z",
        "errorDeclaration": {"declarationTime": "2030-01-01T00:00:00Z", "reason": "incorrect_data"},
        **COMMISSIONING,
    }
    assert event_hash_id(decorated, NS) == hash_id


def test_key_order_whitespace_and_time_zone_do_not_change_the_hash() -> None:
    shuffled = dict(reversed(list(COMMISSIONING.items())))
    shuffled["epcList"] = list(reversed(COMMISSIONING["epcList"]))
    shuffled["eventTime"] = "2024-05-01T00:00:00.123456Z"  # the same instant in UTC
    shuffled["bizStep"] = " https://ref.gs1.org/cbv/BizStep-commissioning "
    assert event_hash_id(shuffled, NS) == event_hash_id(COMMISSIONING, NS)


def test_any_change_changes_the_hash() -> None:
    for key, value in (("disposition", "inactive"), ("eventTime", "2024-05-01T08:00:00.124+08:00"), ("example:x", 1)):
        changed = {**COMMISSIONING, key: value}
        assert event_hash_id(changed, NS) != event_hash_id(COMMISSIONING, NS), key


def test_reference_depends_on_json_key_order_but_we_do_not() -> None:
    """Difference 1: the reference's JSON path follows the document's key order for typed items."""
    event = CUSTOM_EVENTS["transaction with quantities and business transactions"]
    document = _document(event)
    jsonld.set_document_loader(_local_context_loader)
    type_first = hash_generator.derive_prehashes_from_events(json_to_py.event_list_from_epcis_document_json(document))
    assert type_first != reference_prehashes(document)
    assert "bizTransaction=https://ref.gs1.org/cbv/" not in prehash_string(event, NS)
    assert "bizTransaction=urn:epcglobal:cbv:bt:9506000000016:DA-7type=https://ref.gs1.org/cbv/BTT-desadv" in (
        prehash_string(event, NS)
    )


def test_reference_leaves_curies_and_booleans_unnormalized() -> None:
    """Difference 3: `gs1:Temperature` is expanded (rule 15) and booleans are JSON's `true`."""
    event = copy.deepcopy(CUSTOM_EVENTS["sensor readings"])
    event["sensorElementList"][0]["sensorReport"] = [{"type": "gs1:Temperature", "booleanValue": True}]
    ours = prehash_string(event, NS)
    [reference] = reference_prehashes(_document(event))
    assert "sensorReporttype=https://gs1.org/voc/TemperaturebooleanValue=true" in ours
    assert ours != reference


def _sensor_event(measurement: str, exception: str, component: str, length: str) -> dict[str, Any]:
    """A cold-chain reading as the standard's sensor examples write it (a temperature alarm, a position)."""
    event = copy.deepcopy(CUSTOM_EVENTS["sensor readings"])
    event["sensorElementList"][0]["sensorReport"] = [
        {"type": measurement, "exception": exception, "value": 26.0, "uom": "CEL"},
        {"type": length, "component": component, "value": 1.5, "uom": "MTR"},
    ]
    return event


SENSOR_FORMS = {
    "bare terms": ("Temperature", "ALARM_CONDITION", "x", "Length"),
    "CURIEs": ("gs1:Temperature", "gs1:ALARM_CONDITION", "cbv:Comp-x", "gs1:Length"),
    "full URIs": (
        "https://gs1.org/voc/Temperature",
        "https://gs1.org/voc/ALARM_CONDITION",
        "https://ref.gs1.org/cbv/Comp-x",
        "https://gs1.org/voc/Length",
    ),
}


def test_sensor_vocabulary_is_expanded_to_full_uris() -> None:
    """The context types sensorReport `type`, `exception` and `component` as `@vocab`: every form of
    a term is one URI in the pre-hash string, so one reading has one hash ID."""
    prehashes = {name: prehash_string(_sensor_event(*forms), NS) for name, forms in SENSOR_FORMS.items()}
    assert len(set(prehashes.values())) == 1
    text = prehashes["bare terms"]
    assert "sensorReporttype=https://gs1.org/voc/Temperatureexception=https://gs1.org/voc/ALARM_CONDITION" in text
    assert "component=https://ref.gs1.org/cbv/Comp-xuom=MTR" in text
    assert "uom=CEL" in text  # uom is a plain string in the context, not vocabulary
    hashes = {event_hash_id(_sensor_event(*forms), NS) for forms in SENSOR_FORMS.values()}
    assert len(hashes) == 1


@pytest.mark.parametrize("form", ["bare terms", "full URIs"])
def test_sensor_vocabulary_hashes_as_the_reference(form: str) -> None:
    """The reference expands bare terms by JSON-LD expansion too; CURIEs are difference 3."""
    event = _sensor_event(*SENSOR_FORMS[form])
    [reference] = reference_prehashes(_document(event))
    assert prehash_string(event, NS) == reference


ILMD_EVENT = {
    **COMMISSIONING,
    "ilmd": {"cbvmda:lotNumber": "L2405", "cbvmda:itemExpirationDate": "2026-05-01"},
}


def test_cbvmda_ilmd_keys_are_expanded_with_the_standard_context() -> None:
    """`cbvmda:` is defined by the EPCIS 2.0 context itself: its keys hash as `{urn:epcglobal:cbv:mda:}…`
    whether or not the document repeats the prefix (difference 4: the reference only expands
    prefixes the document's own `@context` declares)."""
    ours = prehash_string(ILMD_EVENT, NS)
    assert "ilmd{urn:epcglobal:cbv:mda:}itemExpirationDate=2026-05-01{urn:epcglobal:cbv:mda:}lotNumber=L2405" in ours
    declared = _document(ILMD_EVENT)
    declared["@context"].append({"cbvmda": "urn:epcglobal:cbv:mda:"})
    assert reference_prehashes(declared) == [ours]
    [undeclared] = reference_prehashes(_document(ILMD_EVENT))
    assert undeclared != ours
    assert "cbvmda:lotNumber=L2405" in undeclared
