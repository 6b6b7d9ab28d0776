"""The canonical EPCIS event hash (CBV 2.0 §8.9, "EPCIS Event Hash ID"): `ni:///sha-256;<hex>?ver=CBV2.0`.

A pre-hash string is built from the event's fields in the canonical property order, each value
normalized (timestamps to UTC with milliseconds, numbers without trailing zeros, CBV terms and
CURIEs to full URIs, EPC URNs and Digital Links to the constrained canonical Digital Link), list
elements and extension elements sorted by code point, and hashed with SHA-256 (RFC 6920 `ni` URI).
`recordTime`, `eventID` and `errorDeclaration` are not part of the hash.

Where the reference implementation (`epcis-event-hash-generator` 1.9.3) departs from the algorithm
text, this module follows the text; `docs/trace.md` lists the differences and the tests pin them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from zhongtai.trace.epc import InvalidEpc, canonical_epc

HASH_VERSION = "CBV2.0"
CBV = "https://ref.gs1.org/cbv/"
STANDARD_PREFIXES = {
    "gs1": "https://gs1.org/voc/",
    "cbv": CBV,
    "epcis": "https://ref.gs1.org/epcis/",
    "cbvmda": "urn:epcglobal:cbv:mda:",
}
_CBV_URNS = {
    "urn:epcglobal:cbv:bizstep:": CBV + "BizStep-",
    "urn:epcglobal:cbv:disp:": CBV + "Disp-",
    "urn:epcglobal:cbv:btt:": CBV + "BTT-",
    "urn:epcglobal:cbv:sdt:": CBV + "SDT-",
    "urn:epcglobal:cbv:er:": CBV + "ER-",
}
NOT_HASHED = frozenset({"@context", "type", "eventID", "recordTime", "errorDeclaration"})
EPC_LISTS = ("epcList", "inputEPCList", "childEPCs")
QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList")
_SENSOR_METADATA = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_SENSOR_REPORT = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)
# sensorReport fields the EPCIS 2.0 context types `@vocab` (the others are `@id`, dates, numbers or
# plain strings such as `uom`): a bare term is looked up in the field's own term list.
SENSOR_VOCABULARY_FIELDS = ("type", "exception", "component")


@lru_cache(maxsize=1)
def sensor_vocabulary() -> dict[str, dict[str, str]]:
    """field → {bare term: full URI} from the shipped EPCIS 2.0 context (`sensorReport`'s scoped context)."""
    context = json.loads((Path(__file__).parent / "gs1" / "epcis-context.jsonld").read_text(encoding="utf-8"))
    report = context["@context"]["sensorElementList"]["@context"]["sensorReport"]["@context"]
    found: dict[str, dict[str, str]] = {}
    for name in SENSOR_VOCABULARY_FIELDS:
        terms = report[name]["@context"]
        found[name] = {term: _expand_curie(curie) for term, curie in terms.items() if not term.startswith("@")}
    return found


def _expand_curie(value: str) -> str:
    prefix, colon, rest = value.partition(":")
    return STANDARD_PREFIXES[prefix] + rest if colon and prefix in STANDARD_PREFIXES else value


STANDARD_FIELDS = frozenset(
    {
        "eventTime",
        "eventTimeZoneOffset",
        "certificationInfo",
        "parentID",
        *EPC_LISTS,
        *QUANTITY_LISTS,
        "outputEPCList",
        "outputQuantityList",
        "action",
        "transformationID",
        "bizStep",
        "disposition",
        "persistentDisposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "ilmd",
    }
)


def namespaces_of(context: Any) -> dict[str, str]:
    """Prefix → IRI declared in a JSON-LD `@context` (string entries are remote contexts)."""
    entries = context if isinstance(context, list) else [context]
    found: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, Mapping):
            found.update({k: v for k, v in entry.items() if isinstance(v, str) and not k.startswith("@")})
    return found


def event_hash_id(event: Mapping[str, Any], namespaces: Mapping[str, str] | None = None) -> str:
    digest = hashlib.sha256(prehash_string(event, namespaces).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"


def prehash_string(event: Mapping[str, Any], namespaces: Mapping[str, str] | None = None) -> str:
    return "".join(text for _, text in prehash_segments(event, namespaces))


def prehash_segments(event: Mapping[str, Any], namespaces: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The pre-hash string as (field, text) pieces in canonical order; user extensions last."""
    return _Canonicalizer({**STANDARD_PREFIXES, **(namespaces or {})}).event(event)


@lru_cache(maxsize=4096)  # a time is parsed by the validator, the stored form and the hash
def canonical_time(value: str) -> str:
    """UTC with millisecond precision and `Z` (rounded half up to the millisecond)."""
    moment = parse_time(value).astimezone(UTC)
    millis = (moment.microsecond + 500) // 1000
    moment = moment.replace(microsecond=0) + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=4096)
def parse_time(value: str) -> datetime:
    """An RFC 3339 date-time with a zone (any number of fraction digits)."""
    text = value.strip().replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[:digits][:6].ljust(6, "0") + tail[digits:]
        text = f"{head}.{tail}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def canonical_number(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value).strip()
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


@lru_cache(maxsize=4096)
def cbv_term(value: str, vocabulary: str) -> str:
    """A CBV term as its Web URI: bare words (`shipping`) and URNs alike."""
    value = value.strip()
    if value and ":" not in value:
        return f"{CBV}{vocabulary}-{value}"
    for urn, web in _CBV_URNS.items():
        if value.startswith(urn):
            return web + value[len(urn) :]
    return value


class _Canonicalizer:
    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.namespaces = namespaces

    # values

    def uri(self, value: Any) -> str:
        text = str(value).strip()
        for urn, web in _CBV_URNS.items():
            if text.startswith(urn):
                return web + text[len(urn) :]
        prefix, colon, rest = text.partition(":")
        if colon and prefix in self.namespaces and not rest.startswith("//"):
            text = self.namespaces[prefix] + rest
        try:
            return canonical_epc(text) or text
        except InvalidEpc:
            return text

    def vocabulary_term(self, field: str, value: Any) -> str:
        """A sensorReport `@vocab` value: a bare term of the context (`Temperature`), a CURIE or a URI."""
        text = str(value).strip()
        return sensor_vocabulary()[field].get(text) or self.uri(text)

    def scalar(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return canonical_number(value)
        return self.uri(value)

    def key(self, key: str) -> str:
        prefix, colon, local = key.partition(":")
        if colon and prefix in self.namespaces and not local.startswith("//"):
            return "{" + self.namespaces[prefix] + "}" + local
        return key

    def generic(self, key: str, value: Any) -> list[str]:
        """User extension elements: `{namespace}name=value`, children sorted, lists repeat the key."""
        if isinstance(value, list):
            return [text for item in value for text in self.generic(key, item)]
        name = self.key(key)
        if isinstance(value, Mapping):
            children = sorted(text for k, v in value.items() if not k.startswith("@") for text in self.generic(k, v))
            return [name + "".join(children)]
        text = self.scalar(value)
        return [f"{name}={text}" if text else name]

    def extensions(self, element: Mapping[str, Any], known: Iterable[str]) -> str:
        skip = set(known) | NOT_HASHED
        return "".join(sorted(text for k, v in element.items() if k not in skip for text in self.generic(k, v)))

    # fields

    def event(self, event: Mapping[str, Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = [("eventType", f"eventType={event['type']}")]

        def add(name: str, text: str) -> None:
            if text:
                out.append((name, text))

        add("eventTime", f"eventTime={canonical_time(event['eventTime'])}" if "eventTime" in event else "")
        offset = event.get("eventTimeZoneOffset")
        add("eventTimeZoneOffset", f"eventTimeZoneOffset={offset.strip()}" if offset else "")
        add("certificationInfo", self.values("certificationInfo", event.get("certificationInfo"), self.uri))
        add("parentID", self.values("parentID", event.get("parentID"), self.uri))
        for name in EPC_LISTS:
            add(name, self.epc_list(name, event.get(name)))
        for name in QUANTITY_LISTS:
            add(name, self.quantity_list(name, event.get(name)))
        add("outputEPCList", self.epc_list("outputEPCList", event.get("outputEPCList")))
        add("outputQuantityList", self.quantity_list("outputQuantityList", event.get("outputQuantityList")))
        add("action", f"action={event['action'].strip()}" if event.get("action") else "")
        add("transformationID", self.values("transformationID", event.get("transformationID"), self.uri))
        add("bizStep", self.values("bizStep", event.get("bizStep"), lambda v: cbv_term(v, "BizStep")))
        add("disposition", self.values("disposition", event.get("disposition"), lambda v: cbv_term(v, "Disp")))
        add("persistentDisposition", self.persistent_disposition(event.get("persistentDisposition")))
        for name in ("readPoint", "bizLocation"):
            add(name, self.location(name, event.get(name)))
        add("bizTransactionList", self.typed_list(event.get("bizTransactionList"), "bizTransaction", "BTT"))
        add("sourceList", self.typed_list(event.get("sourceList"), "source", "SDT"))
        add("destinationList", self.typed_list(event.get("destinationList"), "destination", "SDT"))
        add("sensorElementList", self.sensor_elements(event.get("sensorElementList")))
        ilmd = event.get("ilmd")
        add("ilmd", "ilmd" + self.extensions(ilmd, ()) if isinstance(ilmd, Mapping) and ilmd else "")
        add("extensions", self.extensions(event, STANDARD_FIELDS))
        return out

    def values(self, name: str, value: Any, canon: Any) -> str:
        if value is None or value == "":
            return ""
        items = value if isinstance(value, list) else [value]
        return "".join(sorted(f"{name}={canon(item)}" for item in items if str(item).strip()))

    def epc_list(self, name: str, epcs: Any) -> str:
        if not epcs:
            return ""
        return name + "".join(sorted(f"epc={self.uri(epc)}" for epc in epcs))

    def quantity_list(self, name: str, elements: Any) -> str:
        if not elements:
            return ""
        texts = []
        for element in elements:
            text = f"epcClass={self.uri(element['epcClass'])}"
            if element.get("quantity") is not None:
                text += f"quantity={canonical_number(element['quantity'])}"
            if element.get("uom"):
                text += f"uom={element['uom'].strip()}"
            texts.append("quantityElement" + text)
        return name + "".join(sorted(texts))

    def persistent_disposition(self, value: Any) -> str:
        if not isinstance(value, Mapping):
            return ""
        text = "".join(
            "".join(sorted(f"{part}={cbv_term(term, 'Disp')}" for term in value.get(part) or []))
            for part in ("set", "unset")
        )
        return "persistentDisposition" + text if text else ""

    def location(self, name: str, value: Any) -> str:
        if not isinstance(value, Mapping) or not value.get("id"):
            return ""
        return f"{name}id={self.uri(value['id'])}" + self.extensions(value, ("id",))

    def typed_list(self, elements: Any, value_key: str, vocabulary: str) -> str:
        """bizTransaction / source / destination: the value, then its type (rule 13), then sorted."""
        if not elements:
            return ""
        texts = []
        for element in elements:
            text = f"{value_key}={self.uri(element[value_key])}"
            if element.get("type"):
                text += f"type={cbv_term(element['type'], vocabulary)}"
            texts.append(text)
        return f"{value_key}List" + "".join(sorted(texts))

    def ordered(self, element: Mapping[str, Any], order: tuple[str, ...]) -> str:
        texts = []
        for key in order:
            value = element.get(key)
            if value is None or value == "":
                continue
            if key in ("time", "startTime", "endTime"):
                texts.append(f"{key}={canonical_time(value)}")
            elif key in SENSOR_VOCABULARY_FIELDS:
                texts.append(f"{key}={self.vocabulary_term(key, value)}")
            else:
                texts.append(f"{key}={self.scalar(value)}")
        return "".join(texts) + self.extensions(element, order)

    def sensor_elements(self, elements: Any) -> str:
        if not elements:
            return ""
        texts = []
        for element in elements:
            text = "sensorElement"
            metadata = element.get("sensorMetadata")
            if isinstance(metadata, Mapping):
                text += "sensorMetadata" + self.ordered(metadata, _SENSOR_METADATA)
            reports = element.get("sensorReport") or []
            text += "".join(sorted("sensorReport" + self.ordered(report, _SENSOR_REPORT) for report in reports))
            text += self.extensions(element, ("sensorMetadata", "sensorReport"))
            texts.append(text)
        return "sensorElementList" + "".join(sorted(texts))


ERROR_DECLARATION_FIELDS = ("declarationTime", "reason", "correctiveEventIDs")


def error_declaration_prehash(
    event_hash_id: str, declaration: Mapping[str, Any], namespaces: Mapping[str, str] | None = None
) -> str:
    """The pre-hash string of an error declaration about the event `event_hash_id`, built as the event's
    is: `eventID=<event hash ID>errorDeclarationdeclarationTime=…reason=<CBV ER URI>` then the sorted
    `correctiveEventID=…` and the sorted extension fields."""
    canon = _Canonicalizer({**STANDARD_PREFIXES, **(namespaces or {})})
    text = f"eventID={event_hash_id}errorDeclaration"
    if declaration.get("declarationTime"):
        text += f"declarationTime={canonical_time(declaration['declarationTime'])}"
    if declaration.get("reason"):
        text += f"reason={cbv_term(str(declaration['reason']), 'ER')}"
    corrective = declaration.get("correctiveEventIDs") or []
    if corrective:
        text += "correctiveEventIDs" + "".join(sorted(f"correctiveEventID={str(i).strip()}" for i in corrective))
    return text + canon.extensions(declaration, ERROR_DECLARATION_FIELDS)


def error_declaration_hash_id(
    event_hash_id: str, declaration: Mapping[str, Any], namespaces: Mapping[str, str] | None = None
) -> str:
    """The log entry of an error declaration: `ni:///sha-256;<hex>?ver=CBV2.0` of its pre-hash string."""
    digest = hashlib.sha256(error_declaration_prehash(event_hash_id, declaration, namespaces).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"
