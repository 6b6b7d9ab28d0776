"""Pure rules of orders: the state machine, order numbers, draft checks. No I/O."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

PENDING_PAYMENT = "pending_payment"
PAID = "paid"
READY_FOR_PICKUP = "ready_for_pickup"
PICKED_UP = "picked_up"
EXPIRED = "expired"
REFUNDED = "refunded"
STATES: tuple[str, ...] = (PENDING_PAYMENT, PAID, READY_FOR_PICKUP, PICKED_UP, EXPIRED, REFUNDED)
FINAL_STATES = frozenset({PICKED_UP, EXPIRED, REFUNDED})

# from → allowed targets. Everything else is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_PAYMENT: frozenset({PAID, EXPIRED}),
    PAID: frozenset({READY_FOR_PICKUP, REFUNDED}),
    READY_FOR_PICKUP: frozenset({PICKED_UP, REFUNDED}),
    PICKED_UP: frozenset(),
    EXPIRED: frozenset(),
    REFUNDED: frozenset(),
}

# The timestamp column each target state sets.
STAMP_OF: dict[str, str] = {
    PAID: "paid_at",
    READY_FOR_PICKUP: "ready_at",
    PICKED_UP: "picked_up_at",
    EXPIRED: "expired_at",
    REFUNDED: "refunded_at",
}

SOURCES: tuple[str, ...] = ("flashsale", "lottery", "manual")
CURRENCIES: tuple[str, ...] = ("CNY",)
MAX_QUANTITY = 1000
MAX_SOURCE_REF = 120
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def is_legal(from_state: str, to_state: str) -> bool:
    return to_state in TRANSITIONS.get(from_state, frozenset())


def new_order_no(at: datetime) -> str:
    """`YYYYMMDD` (UTC) and 12 Crockford base-32 characters (60 random bits): short enough to read out
    at a store counter, and unique per tenant by a constraint."""
    value = secrets.randbits(60)
    tail = "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(55, -1, -5))
    return f"{at:%Y%m%d}{tail}"


@dataclass(frozen=True)
class OrderDraft:
    """What a seller (flash sale, lottery) hands to sales to create one order.

    `(source, source_ref)` is the natural idempotency key: creating the same draft again is a no-op.
    """

    source: str
    source_ref: str
    consumer_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    unit_price_fen: int
    pay_deadline: datetime
    store_id: uuid.UUID | None = None
    currency: str = "CNY"
    created_at: datetime | None = None


def draft_problems(draft: OrderDraft, now: datetime) -> list[str]:
    """Everything wrong with a draft, as sentences a developer can act on; empty when it is fine."""
    problems: list[str] = []
    if draft.source not in SOURCES:
        problems.append(f"source {draft.source!r} is not one of {', '.join(SOURCES)}")
    if not draft.source_ref or len(draft.source_ref) > MAX_SOURCE_REF:
        problems.append(f"source_ref must have 1 to {MAX_SOURCE_REF} characters")
    if not 1 <= draft.quantity <= MAX_QUANTITY:
        problems.append(f"quantity must be between 1 and {MAX_QUANTITY}")
    if draft.unit_price_fen < 0:
        problems.append("unit_price_fen must not be negative")
    if draft.currency not in CURRENCIES:
        problems.append(f"currency {draft.currency!r} is not supported; use {', '.join(CURRENCIES)}")
    if draft.pay_deadline.tzinfo is None:
        problems.append("pay_deadline must be timezone-aware")
    elif draft.pay_deadline <= now:
        problems.append("pay_deadline must be in the future")
    return problems


# Settlement (结算清分).

PERCENT = "percent"
FIXED = "fixed"
BASIS_POINTS = 10_000
DEFAULT_SCOPE = "default"


@dataclass(frozen=True)
class SettlementRule:
    mode: str  # "percent": shares in basis points summing to 10,000; "fixed": dealer/store fen per unit
    brand_share: int
    dealer_share: int
    store_share: int


@dataclass(frozen=True)
class Shares:
    brand_fen: int
    dealer_fen: int
    store_fen: int

    @property
    def total(self) -> int:
        return self.brand_fen + self.dealer_fen + self.store_fen


BRAND_ONLY = SettlementRule(PERCENT, BASIS_POINTS, 0, 0)


def settlement_rule_problems(rule: SettlementRule) -> list[str]:
    problems: list[str] = []
    if rule.mode not in (PERCENT, FIXED):
        problems.append(f"mode must be {PERCENT!r} or {FIXED!r}")
    shares = (rule.brand_share, rule.dealer_share, rule.store_share)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shares):
        problems.append("shares are whole numbers of at least 0")
    elif rule.mode == PERCENT and sum(shares) != BASIS_POINTS:
        problems.append(
            f"percent shares must add up to 100.00% ({BASIS_POINTS} basis points); they add up to "
            f"{sum(shares) / 100:.2f}%"
        )
    elif rule.mode == FIXED and rule.brand_share != 0:
        problems.append("with fixed shares the brand gets the rest; leave brand_share at 0")
    elif rule.mode == FIXED and rule.dealer_share + rule.store_share > 10**9:
        problems.append("fixed shares are at most 10,000,000 yuan per unit")
    return problems


def split(amount_fen: int, quantity: int, rule: SettlementRule, *, has_dealer: bool, has_store: bool) -> Shares:
    """Split an order's amount. Percent shares round down to the fen and the brand takes the remainder,
    so the parts always add up to the amount; fixed shares are per unit and never exceed the amount.
    A party the order has none of (no channel store, no dealer) passes its share to the brand."""
    if rule.mode == PERCENT:
        dealer = amount_fen * rule.dealer_share // BASIS_POINTS
        store = amount_fen * rule.store_share // BASIS_POINTS
    else:
        dealer = min(amount_fen, rule.dealer_share * quantity)
        store = min(amount_fen - dealer, rule.store_share * quantity)
    dealer = dealer if has_dealer else 0
    store = store if has_store else 0
    return Shares(amount_fen - dealer - store, dealer, store)
