"""ORM models of the EPCIS repository: capture jobs, events, and the EPC index of events.

An event row keeps the event as captured (`body`, JSON) beside the columns queries filter on, all in
canonical form: CBV terms as Web URIs, identifiers as canonical GS1 Digital Links (see `trace.epc`).
Events are append-only; the Merkle log (`trace.log`) holds each event's canonical hash as a leaf.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.core.models import Base, JSONType
from zhongtai.core.tenancy import TenantOwned

# Roles of an identifier in an event (trace_event_epcs.role).
EPC, PARENT, CHILD, INPUT, OUTPUT = 1, 2, 3, 4, 5
QUANTITY, CHILD_QUANTITY, INPUT_QUANTITY, OUTPUT_QUANTITY = 11, 12, 13, 14
INSTANCE_ROLES = (EPC, PARENT, CHILD, INPUT, OUTPUT)
CLASS_ROLES = (QUANTITY, CHILD_QUANTITY, INPUT_QUANTITY, OUTPUT_QUANTITY)

BigId = BigInteger().with_variant(Integer, "sqlite")


class CaptureJob(TenantOwned, Base):
    """One `POST /epcis/capture`: its outcome, and the document until it has been stored."""

    __tablename__ = "trace_capture_jobs"
    __table_args__ = (Index("ix_trace_capture_jobs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    error_behaviour: Mapped[str] = mapped_column(String(10), default="rollback")
    is_running: Mapped[bool] = mapped_column(Boolean, default=True)
    is_success: Mapped[bool] = mapped_column(Boolean, default=True)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    stored_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class TraceEvent(TenantOwned, Base):
    """One EPCIS event. `event_id` is the given eventID or, when none was given, the hash ID."""

    __tablename__ = "trace_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        UniqueConstraint("tenant_id", "hash_id"),
        Index("ix_trace_events_tenant_event_time", "tenant_id", "event_time"),
        Index("ix_trace_events_tenant_record_time", "tenant_id", "record_time"),
        Index("ix_trace_events_tenant_biz_step", "tenant_id", "biz_step"),
        Index("ix_trace_events_tenant_biz_location", "tenant_id", "biz_location"),
        Index("ix_trace_events_tenant_read_point", "tenant_id", "read_point"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(512))
    hash_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(200))
    action: Mapped[str | None] = mapped_column(String(8), default=None)
    event_time: Mapped[datetime]
    event_timezone_offset: Mapped[str] = mapped_column(String(6))
    record_time: Mapped[datetime] = mapped_column(default=utcnow)
    biz_step: Mapped[str | None] = mapped_column(String(300), default=None)
    disposition: Mapped[str | None] = mapped_column(String(300), default=None)
    read_point: Mapped[str | None] = mapped_column(String(512), default=None)
    biz_location: Mapped[str | None] = mapped_column(String(512), default=None)
    capture_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trace_capture_jobs.id", ondelete="SET NULL"), default=None
    )
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    context: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)


class TraceEventEpc(TenantOwned, Base):
    """An identifier of an event (canonical form) with its role, for MATCH_* queries."""

    __tablename__ = "trace_event_epcs"
    __table_args__ = (Index("ix_trace_event_epcs_lookup", "tenant_id", "epc", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("trace_events.id", ondelete="CASCADE"), index=True)
    role: Mapped[int] = mapped_column(SmallInteger)
    epc: Mapped[str] = mapped_column(String(512))


class TraceErrorDeclaration(TenantOwned, Base):
    """An `errorDeclaration` recorded against a stored event (EPCIS 2.0 §7.4.1.2).

    The event hash leaves the declaration out, so an event re-sent with one is the stored event;
    the declaration is kept here, append-only, and its own hash ID (`entry`,
    `hashing.error_declaration_hash_id`) is a leaf of the brand's log. Re-sending it is a no-op.
    """

    __tablename__ = "trace_error_declarations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "entry"),
        Index("ix_trace_error_declarations_tenant_reason", "tenant_id", "reason"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("trace_events.id", ondelete="CASCADE"), index=True)
    entry: Mapped[str] = mapped_column(String(100))
    declaration_time: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(300), default=None)  # CBV Web URI
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the declaration as sent
    record_time: Mapped[datetime] = mapped_column(default=utcnow)


class TraceCorrectiveEvent(TenantOwned, Base):
    """One of a declaration's `correctiveEventIDs`, for `EQ_correctiveEventID`."""

    __tablename__ = "trace_corrective_events"
    __table_args__ = (Index("ix_trace_corrective_events_lookup", "tenant_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    declaration_pk: Mapped[int] = mapped_column(
        ForeignKey("trace_error_declarations.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(512))
