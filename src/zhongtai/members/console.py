"""Console pages of members: search (masked; exact look-up by phone through its keyed hash), the 360
view of one member, the review queue of probable duplicates, and verified real-name identities."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from zhongtai.authenticity import queries as scans
from zhongtai.core.errors import AppError, NotFound
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, RuntimeDep
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.panels import render_panels
from zhongtai.kit.rendering import PER_PAGE, localize_error, redirect_with_flash, render, tr
from zhongtai.members import consent, duplicates, lifecycle, loyalty, oneid, points, privacy, rules, service, touches
from zhongtai.members import oneid_rules as r
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.duplicates_api import queue_scan
from zhongtai.members.models import MemberIdentifier
from zhongtai.members.panels import MEMBER_360, MemberPanelContext
from zhongtai.members.permissions import MEMBERS_READ, MEMBERS_WRITE
from zhongtai.rewards import payouts

router = APIRouter(prefix="/console/members", include_in_schema=False)

MembersReader = Annotated[Principal, require_page(MEMBERS_READ)]
MembersWriter = Annotated[Principal, require_page(MEMBERS_WRITE)]
Reason = Annotated[str, Form(max_length=300)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]

FIELD_LABELS = {"name": "Name", "birthday": "Birthday", "gender": "Gender", "city": "City", "address": "Address"}
AGREEMENT_LABELS = {"exact": "Same", "similar": "Similar", "different": "Different", "missing": "Unknown"}
STAGE_LABELS = {
    "new": "New member",
    "active": "Active",
    "at_risk": "At risk",
    "dormant": "Dormant",
    "churned": "Churned",
    "won_back": "Won back",
}
TOUCH_LABELS = {
    "purchase": "Purchase",
    "scan": "Verified scan",
    "guide_call": "Guide call",
    "message": "Message",
    "app_visit": "App visit",
}
SUGGESTION_STATUSES = {"open": "To review", "merged": "Merged", "dismissed": "Dismissed", "stale": "Stale"}


async def _open_suggestions(session: DbSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(MemberDuplicateSuggestion).where(MemberDuplicateSuggestion.status == "open")
    )
    return int(count or 0)


@router.get("")
async def members_page(
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    _: MembersReader,
    phone: Annotated[str, Query(max_length=40)] = "",
    page: PageNo = 1,
) -> Response:
    """The brand's members, newest first; a phone number finds its member exactly (keyed hash)."""
    error = None
    if phone.strip():
        try:
            found = await oneid.find_by_phone(session, runtime.crypto, phone)
        except AppError as exc:
            found, error = [], localize_error(request, exc)
        rows, total = found, len(found)
    else:
        rows, total = await oneid.list_members(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    counted = await session.execute(
        select(MemberIdentifier.member_id, func.count())
        .where(MemberIdentifier.member_id.in_([m.id for m in rows]))
        .group_by(MemberIdentifier.member_id)
    )
    counts: dict[uuid.UUID, int] = {member_id: int(n) for member_id, n in counted.all()}
    return render(
        request,
        "members/members.html",
        {
            "members": [(m, r.shown_profile(m.profile), counts.get(m.id, 0)) for m in rows],
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "phone": phone,
            "error": error,
            "open_suggestions": await _open_suggestions(session),
            "searched": bool(phone.strip()),
        },
    )


@router.get("/duplicates")
async def duplicates_page(
    request: Request,
    session: DbSession,
    principal: MembersReader,
    status: Literal["open", "merged", "dismissed", "stale"] = "open",
    page: PageNo = 1,
) -> Response:
    """The review queue: pairs of members who are probably one person, most probable first."""
    rows, total = await duplicates.list_suggestions(
        session, status=status, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return render(
        request,
        "members/duplicates.html",
        {
            "suggestions": [(s, [(m, r.shown_profile(m.profile)) for m in (a, b)]) for s, a, b in rows],
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "status": status,
            "statuses": SUGGESTION_STATUSES,
            "fields": FIELD_LABELS,
            "agreements": AGREEMENT_LABELS,
            "can_write": principal.can(MEMBERS_WRITE),
        },
    )


@router.post("/duplicates/scan")
async def scan_duplicates(request: Request, session: DbSession, principal: MembersWriter) -> Response:
    await queue_scan(session, principal.tenant_id)
    return redirect_with_flash(
        request, "/console/members/duplicates", tr(request, "A scan for probable duplicates was queued.")
    )


@router.post("/duplicates/{suggestion_id:uuid}/{action}")
async def decide_duplicate(
    request: Request,
    session: DbSession,
    principal: MembersWriter,
    suggestion_id: uuid.UUID,
    action: Literal["merge", "dismiss", "undo"],
    reason: Reason = "",
) -> Response:
    back = "/console/members/duplicates" + ("?status=merged" if action == "undo" else "")
    try:
        if action == "merge":
            row, merge = await duplicates.do_merge(session, principal, suggestion_id, reason)
            message = tr(request, "The two members were merged.")
            back = f"/console/members/{merge.survivor_id}"
        elif action == "dismiss":
            await duplicates.do_dismiss(session, principal, suggestion_id, reason)
            message = tr(request, "The pair was dismissed and will not be suggested again.")
        else:
            row = await duplicates.do_undo(session, principal, suggestion_id, reason)
            message = tr(request, "The merge was undone; both members are as they were.")
            back = f"/console/members/{row.member_a_id}"
    except NotFound:
        raise  # another brand's id, or none: the 404 page, as for any page
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, back, localize_error(request, exc), kind="error")
    return redirect_with_flash(request, back, message)


@router.post("/merges/{merge_id:uuid}/undo")
async def undo_merge(
    request: Request, session: DbSession, principal: MembersWriter, merge_id: uuid.UUID, reason: Reason = ""
) -> Response:
    try:
        merge = await oneid.do_unmerge(session, principal, merge_id, reason)
    except NotFound:
        raise  # another brand's id, or none: the 404 page, as for any page
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, "/console/members", localize_error(request, exc), kind="error")
    return redirect_with_flash(
        request,
        f"/console/members/{merge.merged_id}",
        tr(request, "The merge was undone; both members are as they were."),
    )


@router.get("/{member_id:uuid}")
async def member_page(request: Request, session: DbSession, principal: MembersReader, member_id: uuid.UUID) -> Response:
    """One member seen whole: profile, identifiers, merges, consents, scans, red packets and what other
    modules add (orders)."""
    member = await oneid.get_member(session, member_id)
    consumer_ids = await oneid.consumer_ids_of(session, member.id)
    recent_scans, scan_total = await scans.scans_of_consumers(session, consumer_ids, limit=10)
    wallets = [await payouts.wallet_summary(session, f"consumer:{c}") for c in consumer_ids]
    context = MemberPanelContext(request, session, member.id, consumer_ids)
    lots = await points.lots_of(session, member.id)
    return render(
        request,
        "members/member.html",
        {
            "member": member,
            "profile": r.shown_profile(member.profile),
            "profile_entries": member.profile or {},
            "fields": FIELD_LABELS,
            "identifiers": await oneid.identifiers_of(session, member.id),
            "merges": await oneid.merges_of(session, member.id),
            "consents": await consent.current(session, member.id),
            "purpose_labels": consent.PURPOSE_LABELS,
            "erasure": await privacy.erasure_of(session, member.id),
            "scans": recent_scans,
            "scan_total": scan_total,
            "wallet": {k: sum(w[k] for w in wallets) for k in ("balance_fen", "held_fen", "withdrawing_fen")},
            "panels": await render_panels(MEMBER_360, context),
            "points_balance": await points.balance_of(session, member.id),
            "points_expiring": points.expiry_schedule(lots)[:3],
            "lots": lots[-10:][::-1],
            "standings": await loyalty.standings(session, member.id),
            "facts": await touches.facts_of(session, member.id),
            "touches": await touches.touches_of(session, member.id, limit=20),
            "transitions": (await lifecycle.transitions_of(session, member.id))[-10:][::-1],
            "stage_labels": STAGE_LABELS,
            "touch_labels": TOUCH_LABELS,
            "can_write": principal.can(MEMBERS_WRITE),
        },
    )


@router.get("/identities")
async def identities_page(
    request: Request,
    session: DbSession,
    _: MembersReader,
    page: PageNo = 1,
) -> Response:
    rows, total = await service.list_identities(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    today = service.today()
    return render(
        request,
        "members/identities.html",
        {
            "identities": [(row, rules.age_on(row.birth_date, today)) for row in rows],
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "adult_age": rules.ALCOHOL_MINIMUM_AGE,
        },
    )
