"""Pure rules of rewards: amounts and distributions (their checks, expected value and draws), the risk
thresholds and their defaults, the China-time day of the daily cap.

Amounts are integers in fen. Random red packets draw with `secrets` (a CSPRNG: nobody can predict the
next packet from the previous ones).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

MAX_AMOUNT_FEN = 10**8  # one reward is at most one million yuan
MAX_TIERS = 20
MAX_WEIGHT = 10**6
CHINA = timedelta(hours=8)


class RuleProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Amounts:
    """What a rule pays: its mean (exact, as a fraction of fen), smallest and largest amount."""

    expected: Fraction
    low: int
    high: int

    @property
    def expected_fen(self) -> float:
        return float(self.expected)


def _amount(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleProblem(field, "An amount is a whole number of fen (1 yuan = 100 fen).")
    if not 1 <= value <= MAX_AMOUNT_FEN:
        raise RuleProblem(field, f"An amount is between 1 and {MAX_AMOUNT_FEN} fen.")
    return value


def check_distribution(mode: str, amount_fen: Any, distribution: Any) -> tuple[int | None, dict[str, Any], Amounts]:
    """Validate a rule's amount settings; returns the normalised (amount_fen, distribution, amounts)."""
    if mode == "fixed":
        amount = _amount(amount_fen, "amount_fen")
        return amount, {}, Amounts(Fraction(amount), amount, amount)
    if mode != "random":
        raise RuleProblem("mode", 'The mode is "fixed" or "random".')
    if not isinstance(distribution, dict):
        raise RuleProblem("distribution", 'A random rule needs a distribution: {"type": "tiers"|"uniform", …}.')
    kind = distribution.get("type")
    if kind == "uniform":
        low = _amount(distribution.get("min_fen"), "distribution.min_fen")
        high = _amount(distribution.get("max_fen"), "distribution.max_fen")
        if high < low:
            raise RuleProblem("distribution.max_fen", "The largest amount must not be below the smallest.")
        return None, {"type": "uniform", "min_fen": low, "max_fen": high}, Amounts(Fraction(low + high, 2), low, high)
    if kind == "tiers":
        tiers = distribution.get("tiers")
        if not isinstance(tiers, list) or not 1 <= len(tiers) <= MAX_TIERS:
            raise RuleProblem("distribution.tiers", f"Give between 1 and {MAX_TIERS} tiers.")
        clean: list[dict[str, int]] = []
        for i, tier in enumerate(tiers):
            if not isinstance(tier, dict):
                raise RuleProblem(f"distribution.tiers[{i}]", "A tier is {amount_fen, weight}.")
            amount = _amount(tier.get("amount_fen"), f"distribution.tiers[{i}].amount_fen")
            weight = tier.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
                raise RuleProblem(
                    f"distribution.tiers[{i}].weight", f"A weight is a whole number from 1 to {MAX_WEIGHT}."
                )
            clean.append({"amount_fen": amount, "weight": weight})
        total = sum(t["weight"] for t in clean)
        expected = Fraction(sum(t["amount_fen"] * t["weight"] for t in clean), total)
        amounts = Amounts(expected, min(t["amount_fen"] for t in clean), max(t["amount_fen"] for t in clean))
        return None, {"type": "tiers", "tiers": clean}, amounts
    raise RuleProblem("distribution.type", 'The distribution type is "tiers" or "uniform".')


def draw(mode: str, amount_fen: int | None, distribution: dict[str, Any]) -> int:
    """One amount, drawn with the operating system's CSPRNG."""
    if mode == "fixed":
        assert amount_fen is not None
        return amount_fen
    if distribution["type"] == "uniform":
        low, high = int(distribution["min_fen"]), int(distribution["max_fen"])
        return low + secrets.randbelow(high - low + 1)
    tiers = distribution["tiers"]
    pick = secrets.randbelow(sum(int(t["weight"]) for t in tiers))
    for tier in tiers:
        pick -= int(tier["weight"])
        if pick < 0:
            return int(tier["amount_fen"])
    raise AssertionError("unreachable")  # pragma: no cover


def china_day(moment: datetime) -> date:
    """The calendar day in China (UTC+8, no daylight saving) of a UTC moment: the daily cap's day."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment.astimezone(UTC) + CHINA).date()


@dataclass(frozen=True)
class RiskSettings:
    """A brand's risk thresholds and withdrawal minimum (tenant settings; these are the defaults)."""

    velocity_per_hour: int = 600  # rewards to one partner (store, guide, dealer) in the last hour
    store_distance_km: float = 5.0  # a store's scan this far from its address is held
    consumer_opens_per_day: int = 20  # consumer open rewards to one consumer or device in 24 hours
    device_accounts: int = 3  # distinct accounts (consumers, partner accounts) seen on one device in 30 days
    min_withdrawal_fen: int = 100  # the smallest withdrawal (1 yuan)


DEFAULT_RISK = RiskSettings()
RISK_LIMITS: dict[str, tuple[int | float, int | float]] = {
    "velocity_per_hour": (1, 1_000_000),
    "store_distance_km": (0.1, 5000.0),
    "consumer_opens_per_day": (1, 100_000),
    "device_accounts": (1, 1000),
    "min_withdrawal_fen": (1, MAX_AMOUNT_FEN),
}


def check_risk_settings(current: RiskSettings, changes: dict[str, Any]) -> RiskSettings:
    names = {f.name for f in fields(RiskSettings)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise RuleProblem(unknown[0], f"Unknown setting {unknown[0]}; known: {', '.join(sorted(names))}.")
    values = {f.name: getattr(current, f.name) for f in fields(RiskSettings)}
    for name, value in changes.items():
        low, high = RISK_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise RuleProblem(name, f"{name} must be between {low} and {high}.")
        if isinstance(low, int):
            if not float(value).is_integer():
                raise RuleProblem(name, f"{name} must be a whole number.")
            values[name] = int(value)
        else:
            values[name] = float(value)
    return RiskSettings(**values)


def risk_of(values: dict[str, Any]) -> RiskSettings:
    known = {f.name for f in fields(RiskSettings)}
    return RiskSettings(**{k: v for k, v in values.items() if k in known})


def yuan(fen: int | float) -> str:
    """Fen for people: 1234 → "12.34"."""
    if isinstance(fen, float) and not fen.is_integer():
        return f"{fen / 100:.4f}".rstrip("0")
    value = int(fen)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 100}.{value % 100:02d}"
