"""Pure rules of OneID: identifier types and their normal form, masks, guard-rail defaults, sources
and profile survivorship. No I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from zhongtai.core.consumers import check_phone
from zhongtai.core.crypto import mask_phone
from zhongtai.core.errors import ValidationFailed
from zhongtai.members import rules

PHONE_PURPOSE = "member.phone"  # the keyed hash of an E.164 phone; marketplace hashed phones use it too
NAME_PURPOSE = "member.display_name"
ADDRESS_PURPOSE = "member.address"
IDENTIFIER_PURPOSE = "member.identifier"


class IdentifierType(StrEnum):
    PHONE = "phone"
    WECHAT_UNIONID = "wechat_unionid"
    WECHAT_OPENID = "wechat_openid"
    ALIPAY_USER_ID = "alipay_user_id"
    TMALL_OUID = "tmall_ouid"
    JD_PIN = "jd_pin"
    DOUYIN_OPENID = "douyin_openid"
    MARKETPLACE_PHONE_HASH = "marketplace_phone_hash"
    POS_MEMBER_NO = "pos_member_no"
    CONSUMER_ACCOUNT = "consumer_account"


# A phone and a marketplace's hashed phone are one key: both are the keyed hash of the E.164 number.
PHONE_CLASS = frozenset({IdentifierType.PHONE, IdentifierType.MARKETPLACE_PHONE_HASH})

# Most identifiers of a type one member may hold (a phone and its marketplace hash count as one phone).
DEFAULT_CAPS: dict[str, int] = {
    IdentifierType.PHONE: 1,
    IdentifierType.WECHAT_UNIONID: 1,
    IdentifierType.WECHAT_OPENID: 5,
    IdentifierType.ALIPAY_USER_ID: 2,
    IdentifierType.TMALL_OUID: 2,
    IdentifierType.JD_PIN: 2,
    IdentifierType.DOUYIN_OPENID: 3,
    IdentifierType.POS_MEMBER_NO: 3,
    IdentifierType.CONSUMER_ACCOUNT: 1,
}

# Strongest first: the order a member's identifiers are listed and conflicts are named in.
TYPE_PRIORITY: tuple[IdentifierType, ...] = (
    IdentifierType.PHONE,
    IdentifierType.MARKETPLACE_PHONE_HASH,
    IdentifierType.CONSUMER_ACCOUNT,
    IdentifierType.WECHAT_UNIONID,
    IdentifierType.ALIPAY_USER_ID,
    IdentifierType.WECHAT_OPENID,
    IdentifierType.POS_MEMBER_NO,
    IdentifierType.TMALL_OUID,
    IdentifierType.JD_PIN,
    IdentifierType.DOUYIN_OPENID,
)

# Where a value came from, most trusted first: ties of profile values are broken in this order
# (`h5` is the member's own word in the member centre).
SOURCES: tuple[str, ...] = ("console", "pos", "app", "wechat", "alipay", "tmall", "jd", "douyin", "import", "h5")

GENDERS = frozenset({"female", "male", "other"})
CITY_MAX_CHARS = 40
RAW_MAX_CHARS = 128
_TOKEN = re.compile(r"^[A-Za-z0-9_\-.@:=+/]{1,128}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def cap_key(kind: str) -> str:
    """The guard-rail key of a type: a marketplace hashed phone counts as a phone."""
    return IdentifierType.PHONE.value if kind in PHONE_CLASS else kind


def priority(kind: str) -> int:
    return TYPE_PRIORITY.index(IdentifierType(kind))


def check_type(raw: str) -> IdentifierType:
    try:
        return IdentifierType(raw)
    except ValueError:
        known = ", ".join(t.value for t in IdentifierType)
        raise ValidationFailed(f"Unknown identifier type {raw!r}; use one of: {known}.", field="type") from None


def check_source(raw: str) -> str:
    if raw not in SOURCES:
        raise ValidationFailed(f"Unknown source {raw!r}; use one of: {', '.join(SOURCES)}.", field="source")
    return raw


def source_rank(source: str) -> int:
    """Higher is more trusted."""
    return len(SOURCES) - SOURCES.index(source) if source in SOURCES else 0


@dataclass(frozen=True)
class Normalised:
    """An identifier in its normal form: `key` is what gets hashed, `masked` what screens show."""

    type: IdentifierType
    key: str
    masked: str
    app_id: str | None = None
    personal: bool = False  # kept encrypted (a phone number)


def mask_token(value: str) -> str:
    if len(value) <= 8:
        return value[:2] + "*" * max(1, len(value) - 2)
    return f"{value[:4]}****{value[-4:]}"


def normalise(kind: str, value: str, app_id: str | None = None) -> Normalised:
    """Check one identifier and put it in normal form, or refuse it with a reason."""
    typ = check_type(kind)
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(f"Give a value for the {typ.value} identifier.", field="value")
    if typ is IdentifierType.PHONE:
        e164 = check_phone(value)
        return Normalised(typ, e164, mask_phone(e164), personal=True)
    if typ is IdentifierType.MARKETPLACE_PHONE_HASH:
        lowered = value.lower()
        if not _HEX64.match(lowered):
            raise ValidationFailed("A marketplace phone hash is 64 hexadecimal characters.", field="value")
        return Normalised(typ, lowered, mask_token(lowered))
    if typ is IdentifierType.CONSUMER_ACCOUNT:
        try:
            account = str(uuid.UUID(value))
        except ValueError:
            raise ValidationFailed("A consumer account is the account's id (a UUID).", field="value") from None
        return Normalised(typ, account, mask_token(account))
    if not _TOKEN.match(value):
        raise ValidationFailed(
            f"A {typ.value} has at most {RAW_MAX_CHARS} letters, digits and -_.@:=+/ characters.", field="value"
        )
    if typ is IdentifierType.WECHAT_OPENID:
        app = (app_id or "").strip()
        if not app or not _TOKEN.match(app):
            raise ValidationFailed("A WeChat openid needs the app id it belongs to.", field="app_id")
        return Normalised(typ, f"{app}:{value}", mask_token(value), app_id=app)
    return Normalised(typ, value, mask_token(value))


# --- profile -------------------------------------------------------------------------------------

PROFILE_FIELDS = ("name", "birthday", "gender", "city", "address")
# Profile fields kept encrypted (with a masked copy), and the purpose their key is derived for.
ENCRYPTED_PROFILE_FIELDS = {"name": NAME_PURPOSE, "address": ADDRESS_PURPOSE}
ADDRESS_MAX_CHARS = 200


def check_profile_value(field: str, value: Any, *, today: date) -> str:
    """The stored text of a profile value (names and addresses are encrypted by the caller)."""
    if field == "name":
        name = " ".join(str(value or "").split())
        if not name or len(name) > rules.NAME_MAX_CHARS:
            raise ValidationFailed(f"A name has 1 to {rules.NAME_MAX_CHARS} characters.", field="name")
        return name
    if field == "birthday":
        if not isinstance(value, date) or value > today or value.year < 1900:
            raise ValidationFailed("A birthday is a real date in the past.", field="birthday")
        return value.isoformat()
    if field == "gender":
        if value not in GENDERS:
            raise ValidationFailed(f"Gender is one of {', '.join(sorted(GENDERS))}.", field="gender")
        return str(value)
    if field == "city":
        city = " ".join(str(value or "").split())
        if not city or len(city) > CITY_MAX_CHARS:
            raise ValidationFailed(f"A city has 1 to {CITY_MAX_CHARS} characters.", field="city")
        return city
    if field == "address":
        address = " ".join(str(value or "").split())
        if not address or len(address) > ADDRESS_MAX_CHARS:
            raise ValidationFailed(f"An address has 1 to {ADDRESS_MAX_CHARS} characters.", field="address")
        return address
    raise ValidationFailed(f"Unknown profile field {field!r}.", field=field)


def mask_profile_value(field: str, text: str) -> str:
    """What a screen shows of an encrypted profile value: a name's first character, an address's
    first six (the district, rarely the street) — never the house number."""
    if field == "name":
        return rules.mask_name(text)
    return text[:6] + "***"


def shown_profile(profile: dict[str, Any]) -> dict[str, str]:
    """A member's profile as a screen shows it: encrypted fields masked, the others as stored."""
    return {
        name: str(entry.get("masked", "") if name in ENCRYPTED_PROFILE_FIELDS else entry.get("value", ""))
        for name, entry in (profile or {}).items()
    }


def strength(entry: dict[str, Any]) -> tuple[bool, datetime, int]:
    """Survivorship order of a profile value: verified first, then the most recent, then the source."""
    return (bool(entry["verified"]), datetime.fromisoformat(entry["at"]), source_rank(str(entry["source"])))


def beats(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` replaces `current`: a verified value beats an unverified one; between equals
    the most recent wins; a tie goes to the more trusted source; a full tie keeps what is there."""
    return current is None or strength(candidate) > strength(current)


def survive(current: dict[str, Any], candidates: dict[str, Any]) -> dict[str, Any]:
    """The profile after offering `candidates` (field → entry) to `current`."""
    merged = dict(current)
    for field, entry in candidates.items():
        if beats(entry, merged.get(field)):
            merged[field] = entry
    return merged
