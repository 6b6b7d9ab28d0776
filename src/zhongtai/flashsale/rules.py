"""Pure rules of flash sales: the sale form, the sale's window, the signed sale pass. No I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from zhongtai.flashsale.errors import SaleInvalid

PASS_PREFIX = "zfp_"
_PASS_PAYLOAD = struct.Struct(">16s16sI")
_PASS_SIGNATURE_BYTES = 16
_PASS_LENGTH = len(PASS_PREFIX) + -(-(_PASS_PAYLOAD.size + _PASS_SIGNATURE_BYTES) * 4 // 3)
MAX_STOCK = 10_000_000
MAX_PER_MEMBER = 100
MAX_PRICE_FEN = 100_000_000  # 1,000,000 yuan
IDEMPOTENCY_KEY_MAX = 64


@dataclass(frozen=True)
class SaleDraft:
    title: str
    product_id: uuid.UUID
    price_fen: int
    stock: int
    starts_at: datetime
    ends_at: datetime
    per_member_limit: int = 1
    payment_minutes: int = 15
    requires_verification: bool = True
    minimum_age: int = 18


def check_sale(draft: SaleDraft) -> SaleDraft:
    """Every problem of a sale form at once, as `data.errors` of one refusal."""
    problems: list[dict[str, str]] = []

    def problem(field: str, message: str) -> None:
        problems.append({"field": field, "problem": message})

    title = " ".join(draft.title.split())
    if not 1 <= len(title) <= 120:
        problem("title", "Give the sale a title of 1 to 120 characters.")
    if not 0 < draft.price_fen <= MAX_PRICE_FEN:
        problem("price", "The price must be more than 0 and at most 1,000,000 yuan.")
    if not 1 <= draft.stock <= MAX_STOCK:
        problem("stock", f"Stock must be between 1 and {MAX_STOCK:,}.")
    if not 1 <= draft.per_member_limit <= MAX_PER_MEMBER:
        problem("per_member_limit", f"The per-member limit must be between 1 and {MAX_PER_MEMBER}.")
    if not 1 <= draft.payment_minutes <= 7 * 24 * 60:
        problem("payment_minutes", "The payment deadline must be between 1 minute and 7 days.")
    if not 0 <= draft.minimum_age <= 100:
        problem("minimum_age", "The minimum age must be between 0 and 100.")
    if draft.starts_at.tzinfo is None or draft.ends_at.tzinfo is None:
        problem("starts_at", "Give start and end with a time zone.")
    elif draft.ends_at <= draft.starts_at:
        problem("ends_at", "The sale must end after it starts.")
    if problems:
        summary = " ".join(p["problem"] for p in problems)
        raise SaleInvalid(f"The sale is not valid: {summary}", errors=problems)
    return SaleDraft(
        title=title,
        product_id=draft.product_id,
        price_fen=draft.price_fen,
        stock=draft.stock,
        starts_at=draft.starts_at,
        ends_at=draft.ends_at,
        per_member_limit=draft.per_member_limit,
        payment_minutes=draft.payment_minutes,
        requires_verification=draft.requires_verification,
        minimum_age=draft.minimum_age,
    )


def pass_key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, b"zhongtai.flashsale.pass.v1", hashlib.sha256).digest()


def issue_pass(key: bytes, *, sale_id: uuid.UUID, consumer_id: uuid.UUID, expires_epoch: int) -> str:
    """A bearer pass for one member and one sale, valid until `expires_epoch` (seconds, UTC).

    It says that the member passed the sale's eligibility checks when it was issued, so that the buy
    needs no database read."""
    payload = _PASS_PAYLOAD.pack(sale_id.bytes, consumer_id.bytes, expires_epoch)
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:_PASS_SIGNATURE_BYTES]
    return PASS_PREFIX + base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")


def read_pass(key: bytes, token: str, *, now_epoch: float) -> tuple[bytes, bytes] | None:
    """(sale id, consumer id) as 16 bytes each, of a genuine, unexpired pass, else None."""
    if not token.startswith(PASS_PREFIX) or len(token) != _PASS_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token[4:] + "==")
    except ValueError:
        return None
    if len(raw) != _PASS_PAYLOAD.size + _PASS_SIGNATURE_BYTES:
        return None
    payload, signature = raw[: _PASS_PAYLOAD.size], raw[_PASS_PAYLOAD.size :]
    if not hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest()[:_PASS_SIGNATURE_BYTES], signature):
        return None
    sale, consumer, expires = _PASS_PAYLOAD.unpack(payload)
    if expires < now_epoch:
        return None
    return sale, consumer


def check_idempotency_key(raw: str) -> str | None:
    """The key if it is 1-64 printable ASCII characters without spaces, else None."""
    if not 1 <= len(raw) <= IDEMPOTENCY_KEY_MAX or not raw.isascii() or not raw.isprintable() or " " in raw:
        return None
    return raw


def price_fen(price: Decimal) -> int:
    """Yuan (at most two decimals) to fen; refuses anything else with a reason."""
    fen = price * 100
    if not price.is_finite() or fen != fen.to_integral_value():
        raise SaleInvalid(
            "The price is in yuan with at most two decimals.", errors=[{"field": "price", "problem": "two decimals"}]
        )
    return int(fen)


def format_price(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"
