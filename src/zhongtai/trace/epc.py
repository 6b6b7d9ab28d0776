"""EPC canonicalization: EPC URNs and GS1 Digital Link URIs to one stored form.

The stored form is the *constrained canonical GS1 Digital Link URI* — `https://id.gs1.org/…` with
the GS1 key, only the most fine-grained qualifier (serial or lot), no query string — the same form
the CBV 2.0 event hash uses. It needs no company-prefix length (which only URNs carry), so any
Digital Link a consumer's phone scans maps to it directly, and a URN maps to it by arithmetic.

`canonical_epc` returns None for identifiers that are neither (e.g. `urn:uuid:…`, a brand's own
`https://` identifiers): those are kept as given. A value that claims to be a GS1 identifier but is
malformed (wrong digit count, wrong check digit) raises `InvalidEpc`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

CANONICAL_HOST = "https://id.gs1.org"


class InvalidEpc(ValueError):
    pass


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit of a key given without it."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def _with_check(digits: str) -> str:
    return digits + check_digit(digits)


def _encode(value: str) -> str:
    """Digital Link percent-encoding of a key value or qualifier (decoded first, so both agree)."""
    return quote(unquote(value), safe="-._'")


# --- EPC URNs ------------------------------------------------------------------------------------

_URN = re.compile(r"^urn:epc:(id|class|idpat):([a-z]+):(.+)$")


def _split(body: str, parts: int, scheme: str) -> list[str]:
    fields = body.split(".", parts - 1) if parts > 1 else [body]
    if len(fields) != parts:
        raise InvalidEpc(f"urn:epc:…:{scheme} needs {parts} dot-separated fields")
    return fields


def _digits(value: str, what: str) -> str:
    if not value.isdigit() or not value.isascii():
        raise InvalidEpc(f"{what} must be digits, not {value!r}")
    return value


def _gtin(company_prefix: str, item_reference: str) -> str:
    _digits(company_prefix, "company prefix")
    _digits(item_reference, "item reference")
    if len(company_prefix) + len(item_reference) != 13 or not 6 <= len(company_prefix) <= 12:
        raise InvalidEpc("company prefix and item reference must have 13 digits together")
    return _with_check(item_reference[0] + company_prefix + item_reference[1:])


def _twelve(company_prefix: str, reference: str, what: str) -> str:
    _digits(company_prefix, "company prefix")
    if reference:
        _digits(reference, what)
    if len(company_prefix) + len(reference) != 12 or not 6 <= len(company_prefix) <= 12:
        raise InvalidEpc(f"company prefix and {what} must have 12 digits together")
    return _with_check(company_prefix + reference)


def _serial(value: str) -> str:
    if not value:
        raise InvalidEpc("the serial part is empty")
    return _encode(value)


def _urn_to_dl(kind: str, scheme: str, body: str) -> str:
    if kind == "id":
        if scheme == "sgtin":
            cp, ir, serial = _split(body, 3, scheme)
            return f"/01/{_gtin(cp, ir)}/21/{_serial(serial)}"
        if scheme == "sscc":
            cp, ref = _split(body, 2, scheme)
            _digits(cp, "company prefix")
            _digits(ref, "serial reference")
            if len(cp) + len(ref) != 17:
                raise InvalidEpc("company prefix and serial reference must have 17 digits together")
            return f"/00/{_with_check(ref[0] + cp + ref[1:])}"
        if scheme == "sgln":
            cp, lr, ext = _split(body, 3, scheme)
            gln = _twelve(cp, lr, "location reference")
            return f"/414/{gln}" if ext == "0" else f"/414/{gln}/254/{_serial(ext)}"
        if scheme == "pgln":
            cp, pr = _split(body, 2, scheme)
            return f"/417/{_twelve(cp, pr, 'party reference')}"
        if scheme == "grai":
            cp, at, serial = _split(body, 3, scheme)
            return f"/8003/0{_twelve(cp, at, 'asset type')}{_encode(serial)}"
        if scheme == "giai":
            cp, ar = _split(body, 2, scheme)
            return f"/8004/{_digits(cp, 'company prefix')}{_serial(ar)}"
        if scheme in ("gsrn", "gsrnp"):
            cp, sr = _split(body, 2, scheme)
            _digits(cp, "company prefix")
            _digits(sr, "service reference")
            if len(cp) + len(sr) != 17:
                raise InvalidEpc("company prefix and service reference must have 17 digits together")
            return f"/{'8018' if scheme == 'gsrn' else '8017'}/{_with_check(cp + sr)}"
        if scheme == "gdti":
            cp, dt, serial = _split(body, 3, scheme)
            return f"/253/{_twelve(cp, dt, 'document type')}{_encode(serial)}"
        if scheme == "sgcn":
            cp, cr, serial = _split(body, 3, scheme)
            return f"/255/{_twelve(cp, cr, 'coupon reference')}{_digits(serial, 'serial')}"
        if scheme == "ginc":
            cp, ref = _split(body, 2, scheme)
            return f"/401/{_digits(cp, 'company prefix')}{_serial(ref)}"
        if scheme == "gsin":
            cp, ref = _split(body, 2, scheme)
            _digits(cp, "company prefix")
            _digits(ref, "shipper reference")
            if len(cp) + len(ref) != 16:
                raise InvalidEpc("company prefix and shipper reference must have 16 digits together")
            return f"/402/{_with_check(cp + ref)}"
        if scheme == "upui":
            cp, ir, tpx = _split(body, 3, scheme)
            return f"/01/{_gtin(cp, ir)}/235/{_serial(tpx)}"
    if kind == "class" and scheme == "lgtin":
        cp, ir, lot = _split(body, 3, scheme)
        return f"/01/{_gtin(cp, ir)}/10/{_serial(lot)}"
    if kind == "idpat" and scheme == "sgtin":
        cp, ir, star = _split(body, 3, scheme)
        if star != "*":
            raise InvalidEpc("only the whole-GTIN pattern (…item reference.*) is supported")
        return f"/01/{_gtin(cp, ir)}"
    raise InvalidEpc(f"urn:epc:{kind}:{scheme} is not a supported EPC scheme")


# --- GS1 Digital Link ----------------------------------------------------------------------------

# Primary key AI → (digits of a fixed-length numeric key with check digit, or None, qualifiers kept).
_PRIMARY_KEYS: dict[str, tuple[int | None, tuple[str, ...]]] = {
    "01": (14, ("21", "235", "10")),
    "00": (18, ()),
    "414": (13, ("254",)),
    "417": (13, ()),
    "8003": (None, ()),
    "8004": (None, ()),
    "8006": (None, ("21", "10")),
    "8010": (None, ("8011",)),
    "8017": (18, ()),
    "8018": (18, ()),
    "253": (None, ()),
    "255": (None, ()),
    "401": (None, ()),
    "402": (17, ()),
}
_SHORT_NAMES = {
    "gtin": "01",
    "sscc": "00",
    "gln": "414",
    "party": "417",
    "grai": "8003",
    "giai": "8004",
    "itip": "8006",
    "cpid": "8010",
    "gsrnp": "8017",
    "gsrn": "8018",
    "gdti": "253",
    "gcn": "255",
    "ginc": "401",
    "gsin": "402",
    "ser": "21",
    "lot": "10",
    "cpv": "22",
}
# Qualifiers that may appear in a path, in the order GS1 Digital Link allows them.
_ANY_QUALIFIER = {"21", "235", "10", "22", "254", "8011"}


def _dl_to_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    segments = [s for s in parts.path.split("/") if s]
    # The key may follow a path prefix of the brand's own resolver: find the first key AI that is
    # followed by AI/value pairs up to the end of the path.
    for start in range(len(segments)):
        ai = _SHORT_NAMES.get(segments[start], segments[start])
        if ai not in _PRIMARY_KEYS or start + 1 >= len(segments):
            continue
        rest = segments[start + 2 :]
        if len(rest) % 2:
            continue
        qualifiers: dict[str, str] = {}
        for i in range(0, len(rest), 2):
            name = _SHORT_NAMES.get(rest[i], rest[i])
            if name not in _ANY_QUALIFIER:
                break
            qualifiers[name] = rest[i + 1]
        else:
            return _dl_key_path(ai, segments[start + 1], qualifiers)
    return None


def _dl_key_path(ai: str, raw_value: str, qualifiers: dict[str, str]) -> str:
    length, kept = _PRIMARY_KEYS[ai]
    value = unquote(raw_value)
    if length is not None:
        if not value.isdigit() or not value.isascii():
            raise InvalidEpc(f"GS1 key ({ai}) must be digits, not {value!r}")
        if ai == "01" and len(value) in (8, 12, 13):
            value = value.zfill(14)
        if len(value) != length:
            raise InvalidEpc(f"GS1 key ({ai}) must have {length} digits")
        if check_digit(value[:-1]) != value[-1]:
            raise InvalidEpc(f"GS1 key ({ai}) {value} has a wrong check digit (expected {check_digit(value[:-1])})")
    path = f"/{ai}/{_encode(value)}"
    for qualifier in kept:  # only the most fine-grained level, e.g. serial rather than lot
        if qualifier in qualifiers:
            return f"{path}/{qualifier}/{_encode(qualifiers[qualifier])}"
    return path


# --- Public API ----------------------------------------------------------------------------------


@lru_cache(maxsize=16_384)
def canonical_epc(value: str) -> str | None:
    """The canonical Digital Link of a GS1 identifier, or None for any other URI.

    Cached: capture canonicalizes each identifier twice (stored form and event hash), and a document
    names the same items, cases and locations again and again. A malformed value raises every time."""
    value = value.strip()
    if value.startswith("urn:epc:"):
        match = _URN.match(value)
        if match is None:
            raise InvalidEpc(f"{value!r} is not an EPC URN")
        return CANONICAL_HOST + _urn_to_dl(*match.groups())
    if value.startswith(("https://", "http://")):
        path = _dl_to_path(value)
        return None if path is None else CANONICAL_HOST + path
    return None


def normalize_epc(value: str) -> str:
    """The stored form: the canonical Digital Link of a GS1 identifier, any other URI as given."""
    return canonical_epc(value) or value.strip()


@dataclass(frozen=True)
class EpcPattern:
    """A query value: an exact identifier, or a class/pattern that also matches what lies below it
    (`urn:epc:idpat:sgtin:…*` or a GTIN-only Digital Link matches every serial of that GTIN)."""

    value: str
    matches_below: bool


def query_pattern(value: str) -> EpcPattern:
    canonical = canonical_epc(value)
    if canonical is None:
        return EpcPattern(value.strip(), matches_below=False)
    is_pattern = value.strip().startswith("urn:epc:idpat:") or re.fullmatch(
        re.escape(CANONICAL_HOST) + r"/01/\d{14}", canonical
    )
    return EpcPattern(canonical, matches_below=bool(is_pattern))
