"""Pure rules of member imports: the documented layouts (which column headers of a marketplace, POS or
CRM export map to which field) and the check of one row into identifiers, a profile and an order.
No I/O; `members.imports` writes what these rules accept. The tables are copied into docs/members.md
("Imports"), so an operator can check a file against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from zhongtai.core.consumers import check_phone
from zhongtai.core.errors import ValidationFailed
from zhongtai.members import oneid_rules as r
from zhongtai.members.facts import CHINA

ORDER_NO_MAX_CHARS = 64
MAX_AMOUNT_FEN = 100_000_000  # one million yuan: larger is a unit mistake (fen exported as yuan)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_AMOUNT = re.compile(r"^[¥￥]?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s*(?:元)?$")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d%H%M%S")
_DAY_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日")
GENDER_WORDS = {"男": "male", "m": "male", "male": "male", "女": "female", "f": "female", "female": "female"}
UNKNOWN_GENDER = frozenset({"", "未知", "保密", "unknown", "-"})
YES = frozenset({"是", "y", "yes", "true", "1", "已验证", "verified"})

# Headers shared by several layouts.
PHONE = ("phone", "mobile", "手机号", "手机", "手机号码", "联系手机", "会员手机号")
PHONE_HASH = ("phone_hash", "phone_sha256", "手机号哈希", "手机号(加密)", "加密手机号", "手机号sha256")
NAME = ("name", "姓名", "会员姓名")
BIRTHDAY = ("birthday", "生日", "出生日期")
GENDER = ("gender", "性别")
CITY = ("city", "城市", "所在城市", "市")
ADDRESS = ("address", "地址", "详细地址")
JOINED_AT = ("joined_at", "入会时间", "注册时间", "绑定时间")
AMOUNT = ("amount", "paid_amount", "实付金额", "买家实际支付金额", "应付金额", "订单应付金额", "实收金额", "金额")
PRODUCT = ("product", "商品", "商品名称", "宝贝标题", "选购商品")


@dataclass(frozen=True)
class Layout:
    """One export layout: `columns` maps a field to the headers accepted for it (compared without case);
    `buyer_type` is the identifier type the layout's own id column becomes (verified: the marketplace
    issued it)."""

    name: str
    label: str
    source: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    buyer_type: str | None = None
    is_order: bool = False


def _member_layout(name: str, label: str, source: str, id_headers: tuple[str, ...], buyer_type: str) -> Layout:
    return Layout(
        name=name,
        label=label,
        source=source,
        columns={
            "buyer_id": id_headers,
            "phone": PHONE,
            "phone_hash": PHONE_HASH,
            "birthday": BIRTHDAY,
            "gender": GENDER,
            "city": CITY,
            "joined_at": JOINED_AT,
        },
        required=("buyer_id",),
        buyer_type=buyer_type,
    )


def _order_layout(
    name: str, label: str, source: str, order_headers: tuple[str, ...], id_headers: tuple[str, ...], buyer_type: str
) -> Layout:
    return Layout(
        name=name,
        label=label,
        source=source,
        columns={
            "order_no": order_headers,
            "buyer_id": id_headers,
            "phone": PHONE,
            "phone_hash": PHONE_HASH,
            "ordered_at": (
                "ordered_at",
                "paid_at",
                "下单时间",
                "订单付款时间",
                "付款时间",
                "支付完成时间",
                "订单提交时间",
            ),
            "amount": AMOUNT,
            "product": PRODUCT,
        },
        required=("order_no", "buyer_id", "ordered_at", "amount"),
        buyer_type=buyer_type,
        is_order=True,
    )


TMALL_ID = ("ouid", "tmall_ouid", "OUID", "买家OUID", "会员OUID", "买家ouid")
JD_ID = ("pin", "jd_pin", "用户PIN", "京东PIN", "PIN", "下单帐号", "下单账号", "用户账号")
DOUYIN_ID = ("openid", "douyin_openid", "抖音openid", "用户openid", "open_id", "openId")

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        _member_layout("tmall_members", "Tmall members (天猫会员)", "tmall", TMALL_ID, r.IdentifierType.TMALL_OUID),
        _member_layout("jd_members", "JD members (京东会员)", "jd", JD_ID, r.IdentifierType.JD_PIN),
        _member_layout(
            "douyin_members", "Douyin members (抖音会员)", "douyin", DOUYIN_ID, r.IdentifierType.DOUYIN_OPENID
        ),
        _order_layout(
            "tmall_orders",
            "Tmall orders (天猫订单)",
            "tmall",
            ("order_no", "订单编号", "订单号", "主订单编号"),
            TMALL_ID,
            r.IdentifierType.TMALL_OUID,
        ),
        _order_layout(
            "jd_orders",
            "JD orders (京东订单)",
            "jd",
            ("order_no", "订单号", "订单编号"),
            JD_ID,
            r.IdentifierType.JD_PIN,
        ),
        _order_layout(
            "douyin_orders",
            "Douyin orders (抖店订单)",
            "douyin",
            ("order_no", "主订单编号", "订单编号", "订单号"),
            DOUYIN_ID,
            r.IdentifierType.DOUYIN_OPENID,
        ),
        Layout(
            name="pos_orders",
            label="POS orders (门店小票)",
            source="pos",
            columns={
                "store_code": ("store_code", "门店编码", "门店代码", "门店编号"),
                "member_no": ("member_no", "会员号", "会员卡号", "会员编号"),
                "phone": PHONE,
                "order_no": ("receipt_no", "order_no", "小票号", "单据号", "流水号"),
                "ordered_at": ("ordered_at", "sold_at", "时间", "销售时间", "交易时间"),
                "amount": AMOUNT,
                "product": PRODUCT,
            },
            required=("store_code", "order_no", "ordered_at", "amount"),
            is_order=True,
        ),
        Layout(
            name="crm_members",
            label="CRM members (会员系统)",
            source="import",
            columns={
                "phone": PHONE,
                "phone_verified": ("phone_verified", "手机已验证", "手机号已验证"),
                "name": NAME,
                "birthday": BIRTHDAY,
                "gender": GENDER,
                "city": CITY,
                "address": ADDRESS,
                "member_no": ("member_no", "会员号", "会员卡号", "会员编号"),
                "joined_at": JOINED_AT,
            },
            required=("phone",),
        ),
    )
}


@dataclass
class CheckedRow:
    """One row that passed the rules: what `do_link` and the purchase touch receive."""

    key: str
    identifiers: list[tuple[str, str, bool]] = field(default_factory=list)  # type, value, verified
    profile: dict[str, object] = field(default_factory=dict)
    observed_at: datetime | None = None
    order_no: str | None = None
    amount_fen: int = 0
    store_code: str | None = None


class RowProblem(ValidationFailed):
    """A field of a row is wrong; `template` and `values` are the report's English message."""

    def __init__(self, field_name: str, template: str, **values: object) -> None:
        super().__init__(template.format(**values), field=field_name)
        self.field_name, self.template, self.values = field_name, template, values


def parse_amount(text: str) -> int:
    """Fen from a yuan amount as exports write it (`¥1,299.00`, `1299`, `59.9元`)."""
    if not text:
        raise RowProblem("amount", "Give the amount paid.")
    match = _AMOUNT.match(text.replace(" ", ""))
    if match is None:
        raise RowProblem("amount", "Not an amount: '{value}'.", value=text)
    try:
        fen = Decimal(match.group(1).replace(",", "")) * 100
    except InvalidOperation:
        raise RowProblem("amount", "Not an amount: '{value}'.", value=text) from None
    if fen < 0:
        raise RowProblem("amount", "An amount is never negative: '{value}'.", value=text)
    if fen != fen.to_integral_value() or fen > MAX_AMOUNT_FEN:
        raise RowProblem("amount", "An amount has at most two decimals and is under 1,000,000 yuan.")
    return int(fen)


def parse_time(text: str, field_name: str) -> datetime:
    """An export's time; times without a zone are China Standard Time, as the marketplaces write them."""
    value = text.strip().replace("T", " ")
    for fmt in (*_DATE_FORMATS, *_DAY_FORMATS):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=CHINA)
        except ValueError:
            continue
    try:
        aware = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RowProblem(field_name, "Not a date and time: '{value}'; use 2024-05-01 12:30:00.", value=text) from None
    return aware if aware.tzinfo is not None else aware.replace(tzinfo=CHINA)


def parse_birthday(text: str) -> date:
    value = text.strip().split(" ")[0].split("T")[0]
    for fmt in _DAY_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=CHINA).date()
        except ValueError:
            continue
    raise RowProblem("birthday", "Not a date: '{value}'; use 1990-05-01.", value=text)


def parse_gender(text: str) -> str | None:
    word = text.strip().lower()
    if word in UNKNOWN_GENDER:
        return None
    if word not in GENDER_WORDS:
        raise RowProblem("gender", "Gender is 男 or 女 (male or female), or empty: '{value}'.", value=text)
    return GENDER_WORDS[word]


def phone_identifiers(values: dict[str, str], *, verified: bool) -> list[tuple[str, str, bool]]:
    """A plain phone (a masked one such as 138****0001 cannot be matched and is left out) and a
    marketplace's hashed phone (64 hexadecimal characters, the keyed hash of the E.164 number)."""
    found: list[tuple[str, str, bool]] = []
    phone = values.get("phone", "").strip()
    if phone and "*" not in phone:
        if _HEX64.match(phone):  # some exports put the hashed phone in the phone column
            found.append((r.IdentifierType.MARKETPLACE_PHONE_HASH, phone.lower(), False))
        else:
            try:
                found.append((r.IdentifierType.PHONE, check_phone(phone), verified))
            except ValidationFailed as exc:
                raise RowProblem("phone", exc.message) from None
    digest = values.get("phone_hash", "").strip()
    if digest:
        if not _HEX64.match(digest):
            raise RowProblem("phone_hash", "A hashed phone is 64 hexadecimal characters.")
        found.append((r.IdentifierType.MARKETPLACE_PHONE_HASH, digest.lower(), False))
    return found


def _token(text: str, field_name: str) -> str:
    value = text.strip()
    try:
        r.normalise(r.IdentifierType.POS_MEMBER_NO, value)
    except ValidationFailed:
        raise RowProblem(
            field_name, "'{value}' is not an id: at most 128 letters, digits and -_.@:=+/ characters.", value=value
        ) from None
    return value


def _profile(values: dict[str, str]) -> dict[str, object]:
    profile: dict[str, object] = {}
    if values.get("name", "").strip():
        profile["name"] = values["name"].strip()
    if values.get("birthday", "").strip():
        profile["birthday"] = parse_birthday(values["birthday"])
    if values.get("gender", "").strip() and (gender := parse_gender(values["gender"])):
        profile["gender"] = gender
    for name in ("city", "address"):
        if values.get(name, "").strip():
            profile[name] = values[name].strip()
    return profile


def _order_part(layout: Layout, values: dict[str, str], row: CheckedRow) -> None:
    order_no = values.get("order_no", "").strip()
    if not order_no:
        raise RowProblem("order_no", "Give the order number.")
    if len(order_no) > ORDER_NO_MAX_CHARS or not order_no.isprintable():
        raise RowProblem("order_no", "An order number has at most {count} characters.", count=ORDER_NO_MAX_CHARS)
    row.order_no = order_no
    row.amount_fen = parse_amount(values.get("amount", "").strip())
    row.observed_at = parse_time(values.get("ordered_at", ""), "ordered_at")
    if layout.name == "pos_orders":
        store = values.get("store_code", "").strip()
        if not store:
            raise RowProblem("store_code", "Give the store code.")
        row.store_code = _token(store, "store_code")


def check_row(layout: Layout, values: dict[str, str]) -> CheckedRow:
    """One row of `layout` as identifiers, profile and order, or the first problem found."""
    row = CheckedRow(key="")
    if layout.is_order:
        _order_part(layout, values, row)
    elif values.get("joined_at", "").strip():
        row.observed_at = parse_time(values["joined_at"], "joined_at")
    if layout.buyer_type is not None:
        buyer = values.get("buyer_id", "").strip()
        if not buyer:
            raise RowProblem("buyer_id", "Give the buyer's id.")
        row.identifiers.append((layout.buyer_type, _token(buyer, "buyer_id"), True))
    if values.get("member_no", "").strip():
        row.identifiers.append((r.IdentifierType.POS_MEMBER_NO, _token(values["member_no"], "member_no"), True))
    verified = values.get("phone_verified", "").strip().lower() in YES
    row.identifiers.extend(phone_identifiers(values, verified=verified))
    if not row.identifiers:
        raise RowProblem("phone" if "phone" in layout.required else "member_no", "Give a member number or a phone.")
    row.profile = _profile(values)
    row.key = row.order_no or row.identifiers[0][1]
    return row
