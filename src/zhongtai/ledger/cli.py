"""`zhongtai ledger recompute`: rebuild a brand's balances from its journal and report (or repair) mismatches."""

from __future__ import annotations

import time
from typing import Any

from zhongtai.core import audit, tenancy
from zhongtai.core.cli_support import cli_principal, tenant_by_slug
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.ledger import service


async def recompute(settings: Settings, *, tenant_slug: str, repair: bool, check_entries: bool) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant = await tenant_by_slug(session, tenant_slug)
            tenancy.scope_to_tenant(session, tenant.id)
            start = time.perf_counter()
            report = await service.recompute_balances(session, repair=repair, check_entries=check_entries)
            seconds = time.perf_counter() - start
            if report.repaired:
                await audit.record(
                    session,
                    cli_principal(tenant),
                    "ledger.repair_balances",
                    data={
                        "repaired": report.repaired,
                        "accounts": [str(m.account_id) for m in report.mismatches[:100]],
                    },
                )
        return {
            "tenant": tenant.slug,
            "ok": report.ok,
            "accounts": report.accounts,
            "lines": report.lines,
            "balance_totals": report.balance_totals,
            "journal_totals": report.journal_totals,
            "mismatches": [
                {"account_id": str(m.account_id), "currency": m.currency, "stored": m.stored, "computed": m.computed}
                for m in report.mismatches
            ],
            "unbalanced_entries": [str(e) for e in report.unbalanced_entries],
            "repaired": report.repaired,
            "seconds": round(seconds, 3),
        }
    finally:
        await runtime.stop()
