"""Pure rules of loyalty: checks of programs, tiers and earning rules, expiry dates, FIFO allocation,
tier qualification and sign-in streaks. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from zhongtai.core.errors import ValidationFailed

CHINA = timezone(timedelta(hours=8))  # calendar days and years are China's, whatever the server's zone
QUALIFY_BY = ("points", "spend")
DOWNGRADE_MODES = ("period_end", "rolling")
EARNING_KINDS = ("scan", "purchase", "sign_in", "profile", "review")
EXPIRY_POLICIES = ("next_year_end", "days")
MAX_POINTS = 1_000_000  # per occurrence (or per yuan): far above any sensible rule
MAX_THRESHOLD = 10**12


@dataclass(frozen=True)
class TierDraft:
    code: str
    name: str
    threshold: int
    discount_bp: int = 0
    birthday_gift: bool = False
    free_shipping: bool = False


def check_choice(value: str, allowed: Sequence[str], field: str) -> str:
    if value not in allowed:
        raise ValidationFailed(f"{field} must be one of {', '.join(allowed)}; got {value!r}.", field=field)
    return value


def check_tiers(tiers: Sequence[TierDraft]) -> list[TierDraft]:
    """Tiers in rank order: thresholds strictly rising from the first, codes unique, discounts 0–100 %."""
    if not tiers:
        raise ValidationFailed("A program needs at least one tier.", field="tiers")
    codes = [t.code for t in tiers]
    if len(set(codes)) != len(codes):
        raise ValidationFailed("Each tier needs its own code.", field="tiers")
    for index, tier in enumerate(tiers):
        if not 0 <= tier.threshold <= MAX_THRESHOLD:
            raise ValidationFailed(f"Tier {tier.code}: the threshold must be 0 to {MAX_THRESHOLD}.", field="tiers")
        if not 0 <= tier.discount_bp <= 10_000:
            raise ValidationFailed(f"Tier {tier.code}: a discount is 0 to 10000 basis points.", field="tiers")
        if index and tier.threshold <= tiers[index - 1].threshold:
            raise ValidationFailed("List tiers from the lowest; each threshold above the one before.", field="tiers")
    return list(tiers)


def expires_at(policy: str, days: int | None, earned_at: datetime) -> datetime:
    """When points earned at `earned_at` lapse: the first instant after the next calendar year ends
    (China time), or `days` days after earning."""
    if policy == "days":
        return earned_at + timedelta(days=days or 0)
    year = earned_at.astimezone(CHINA).year
    return datetime(year + 2, 1, 1, tzinfo=CHINA)


def purchase_points(points_per_yuan: int, amount_fen: int) -> int:
    """Whole yuan paid times the rule's points per yuan (fractions of a yuan earn nothing)."""
    return max(amount_fen, 0) // 100 * points_per_yuan


def sign_in_points(base: int, bonus: int, cap: int, streak: int) -> int:
    """Day one of a streak earns `base`; each further day adds `bonus`, up to `cap` days of streak."""
    return base + bonus * (min(streak, max(cap, 1)) - 1)


def next_streak(last_day: date | None, last_streak: int, today: date) -> int:
    return last_streak + 1 if last_day == today - timedelta(days=1) else 1


def china_day(at: datetime) -> date:
    return at.astimezone(CHINA).date()


def allocate(remaining: Sequence[int], wanted: int) -> list[int]:
    """How much to take from each lot (given earliest-expiring first) to take `wanted` in total."""
    taken: list[int] = []
    for left in remaining:
        take = min(left, wanted)
        taken.append(take)
        wanted -= take
    return taken


def qualified_rank(thresholds: Sequence[tuple[int, int]], metric: int) -> int | None:
    """The highest rank whose threshold the metric reaches (exactly at the threshold qualifies)."""
    reached = [rank for rank, threshold in thresholds if metric >= threshold]
    return max(reached) if reached else None
