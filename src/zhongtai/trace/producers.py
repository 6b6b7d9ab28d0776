"""Internal producers: the platform's own custody steps become EPCIS events on the capture path.

Each `code_events` row (commissioning, packing, unpacking, decommissioning) is turned into one EPCIS
2.0 event by an outbox job — ObjectEvent ADD `commissioning` with the lot as ILMD, AggregationEvent
ADD `packing` / DELETE `unpacking`, ObjectEvent DELETE `decommissioning` — and stored like a captured
one: canonical hash, EPC index and a leaf of the brand's Merkle log in one transaction. The job is
idempotent: the event's content (and so its hash) is a function of the code event, and the store
refuses a hash it already holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes import queries as codes_queries
from zhongtai.codes.queries import CodeStep
from zhongtai.codes.service import TRACE_TOPIC
from zhongtai.core import jobs
from zhongtai.trace import events
from zhongtai.trace.epc import CANONICAL_HOST

NAMESPACE = {"zt": "https://zhongtai.dev/ns/epcis/"}
LOOKUP_CHUNK = 1000


def _local_time(moment: datetime, offset: str) -> str:
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


async def _uris(session: Any, ids: list[int]) -> dict[int, str]:
    """Canonical Digital Link URIs of codes: /01/{gtin}/21/{serial} for serials, /00/{sscc} for SSCCs."""
    batches = await codes_queries.batches_of(session)
    gtins = await catalog_queries.product_gtins(session, {b.product_id for b in batches})
    uris: dict[int, str] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        serials = await codes_queries.code_serials(session, ids[start : start + LOOKUP_CHUNK])
        for code_id, serial in serials.items():
            batch = next(b for b in batches if b.holds(code_id))
            uris[code_id] = (
                f"{CANONICAL_HOST}/00/{serial}"
                if batch.scheme == "sscc"
                else f"{CANONICAL_HOST}/01/{gtins[batch.product_id]}/21/{serial}"
            )
    return uris


async def epcis_event_of(session: Any, event: CodeStep) -> dict[str, Any]:
    ids = event.code_id_list
    parent_ids = [event.parent_code_id] if event.parent_code_id is not None else []
    uris = await _uris(session, ids + parent_ids)
    body: dict[str, Any] = {
        "type": "AggregationEvent" if event.kind in ("pack", "unpack") else "ObjectEvent",
        "eventTime": _local_time(event.event_time, event.event_timezone),
        "eventTimeZoneOffset": event.event_timezone,
        "action": event.action,
        "bizStep": event.biz_step,
    }
    if event.disposition:
        body["disposition"] = event.disposition
    if body["type"] == "AggregationEvent":
        body["parentID"] = uris[event.parent_code_id]  # type: ignore[index]
        body["childEPCs"] = [uris[i] for i in ids]
    else:
        body["epcList"] = [uris[i] for i in ids]
    if event.lot_id is not None and event.action == "ADD" and body["type"] == "ObjectEvent":
        lot = await catalog_queries.lot_brief(session, event.lot_id)
        if lot is not None:
            ilmd: dict[str, Any] = {"cbvmda:lotNumber": lot.lot_number}
            if lot.expires_on:
                ilmd["cbvmda:itemExpirationDate"] = lot.expires_on.isoformat()
            if lot.produced_on:
                ilmd["cbvmda:productionDate"] = lot.produced_on.isoformat()
            body["ilmd"] = ilmd
    # Where a channel step happened and between whom (dealers' and stores' own location URIs).
    facts = event.data or {}
    if facts.get("biz_location"):
        body["readPoint"] = {"id": facts["biz_location"]}
        body["bizLocation"] = {"id": facts["biz_location"]}
    if facts.get("sources"):
        body["sourceList"] = [{"type": s["type"], "source": s["id"]} for s in facts["sources"]]
    if facts.get("destinations"):
        body["destinationList"] = [{"type": d["type"], "destination": d["id"]} for d in facts["destinations"]]
    if facts.get("channel_scan"):
        body["zt:channelScan"] = str(facts["channel_scan"])
    # The platform's own facts travel as a namespaced extension: which custody step, from where, by whom.
    body["zt:codeEvent"] = str(event.id)
    if event.read_point:
        body["zt:readPointName"] = event.read_point
    if event.reason:
        body["zt:reason"] = event.reason
    return body


async def do_record_code_event(session: Any, tenant_id: uuid.UUID, code_event_id: int) -> str | None:
    """Store the EPCIS event of one custody step; returns its hash ID (None when it is not found)."""
    code_event = await codes_queries.code_step(session, code_event_id)
    if code_event is None:
        return None
    body = await epcis_event_of(session, code_event)
    prepared = events.prepare(body, position=0, pointer="/0", namespaces=NAMESPACE, context=[NAMESPACE])
    new, _, problems = await events.check_new(session, tenant_id, [prepared])
    if problems:
        raise ValueError(problems[0].message)
    if new:
        await events.do_store(session, tenant_id, new, capture_id=None)
    return prepared.hash_id


@jobs.job_handler(TRACE_TOPIC)
async def record_code_event_job(ctx: jobs.JobContext) -> None:
    await do_record_code_event(ctx.session, ctx.tenant_id, int(ctx.payload["code_event_id"]))


async def do_record_sale(
    session: Any,
    tenant_id: uuid.UUID,
    *,
    code_ids: list[int],
    order_id: uuid.UUID,
    order_no: str,
    store_id: uuid.UUID | None,
    sold_at: datetime,
) -> str:
    """Store the EPCIS ObjectEvent OBSERVE `retail_selling` / `retail_sold` of items handed over for a
    sales order (pickup), with the order as business transaction; returns its hash ID. Idempotent:
    the same hand-over gives the same event, which the store keeps once."""
    uris = await _uris(session, code_ids)
    body: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": _local_time(sold_at, "+08:00"),
        "eventTimeZoneOffset": "+08:00",
        "epcList": [uris[i] for i in code_ids],
        "action": "OBSERVE",
        "bizStep": "retail_selling",
        "disposition": "retail_sold",
        "bizTransactionList": [{"type": "po", "bizTransaction": f"urn:zhongtai:sales-order:{order_id}"}],
        "zt:salesOrder": order_no,
    }
    if store_id is not None:
        body["zt:store"] = str(store_id)
    prepared = events.prepare(body, position=0, pointer="/0", namespaces=NAMESPACE, context=[NAMESPACE])
    new, _, problems = await events.check_new(session, tenant_id, [prepared])
    if problems:
        raise ValueError(problems[0].message)
    if new:
        await events.do_store(session, tenant_id, new, capture_id=None)
    return prepared.hash_id
