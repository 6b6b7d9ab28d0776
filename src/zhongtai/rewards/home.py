"""The rewards section of the console home: what was paid to wallets per day against the fee pools'
budget, and the rewards held for review."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.kit.home import Figure, Section, Series, Window, per_day
from zhongtai.ledger import service as ledger
from zhongtai.rewards.models import HELD, PAID, RELEASED, FeePool, RewardGrant


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


async def home_section(session: AsyncSession, window: Window) -> Section:
    paid = await per_day(
        session, window, RewardGrant.created_at, RewardGrant.status.in_((PAID, RELEASED)), value=RewardGrant.amount_fen
    )
    held = int(await session.scalar(select(func.count()).where(RewardGrant.status == HELD)) or 0)
    pools = list(await session.scalars(select(FeePool).where(FeePool.is_active.is_(True))))
    funded = sum(pool.funded_fen for pool in pools)
    left = 0
    for pool in pools:
        left += await ledger.balance_of(session, pool.account_id)
    return Section(
        key="rewards",
        title="Rewards",
        href="/console/rewards/pools",
        figures=[
            Figure(
                "Rewards paid",
                "/console/rewards/pools",
                sum(paid),
                paid[-1],
                money=True,
                note="{left} of {funded} budget left",
                note_values={"left": yuan(left), "funded": yuan(funded)},
            ),
            Figure("Held for review", "/console/rewards/review", held, warn=held > 0),
        ],
        series=[Series("Rewards paid", paid, money=True)],
    )
