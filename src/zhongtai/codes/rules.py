"""Pure rules of codes: serials, SSCCs, hidden PINs, GS1 Digital Link URIs. No I/O.

Serials (made in `codes.serials`, arithmetic in docs/codes.md): 16 characters of RFC 4648 base32
(A–Z, 2–7), all within GS1's AI (21) character set — a key-version character and the code's id
encrypted with FF1 over 75 bits. With L live codes, one blind guess hits a live code with
probability at most L / 2^75; even at 10^10 live codes that is 2.6e-13 per guess, against the EU
Falsified Medicines Directive bound of 1 in 10,000 for guessing a valid serial.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from stdnum import ean

SERIAL_BYTES = 10
SERIAL_LENGTH = 16  # base32 characters of SERIAL_BYTES
SERIAL_RE = re.compile(r"^[A-Z2-7]{16}$")
PIN_DIGITS = 8
SSCC_LENGTH = 18
GS1_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")


def sscc_capacity(company_prefix: str) -> int:
    """How many serial references a GS1 company prefix leaves for SSCCs (17 digits before the check)."""
    return int(10 ** (16 - len(company_prefix)))


def sscc(extension_digit: int, company_prefix: str, serial_reference: int) -> str:
    """SSCC (AI 00): extension digit, company prefix, serial reference, GS1 mod-10 check digit."""
    width = 16 - len(company_prefix)
    if not 0 <= serial_reference < 10**width:
        raise ValueError(f"serial reference {serial_reference} does not fit {width} digits")
    body = f"{extension_digit}{company_prefix}{serial_reference:0{width}d}"
    return body + ean.calc_check_digit(body)


def is_valid_sscc(value: str) -> bool:
    return len(value) == SSCC_LENGTH and value.isdigit() and ean.calc_check_digit(value[:-1]) == value[-1]


def pin_for(key: bytes, serial: str) -> str:
    """The hidden PIN (暗码) of a serial: HMAC-SHA256 under the brand's PIN key, as 8 decimal digits.

    It is never stored: the print file computes it, verification recomputes it."""
    digest = hmac.digest(key, serial.encode("ascii"), "sha256")
    return f"{int.from_bytes(digest[:8], 'big') % 10**PIN_DIGITS:0{PIN_DIGITS}d}"


def check_pin(key: bytes, serial: str, pin: str) -> bool:
    return hmac.compare_digest(pin_for(key, serial), pin.strip())


def item_link(base: str, gtin14: str, serial: str, lot: str | None = None) -> str:
    """`base` is the resolver's scheme and host, e.g. `https://id.brand.example`."""
    lot_part = f"/10/{_escape(lot)}" if lot else ""
    return f"{base}/01/{gtin14}{lot_part}/21/{_escape(serial)}"


def sscc_link(base: str, value: str) -> str:
    return f"{base}/00/{value}"


def check_resolver_base(value: str) -> str:
    """A resolver base must be an http(s) origin without path, query or fragment."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ValueError("The resolver address must look like https://id.brand.example (no path).")
    return f"{parts.scheme}://{parts.netloc}"


def _escape(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class ParsedCode:
    """What a scanned or typed code names: an item (GTIN + serial, lot optional) or an SSCC."""

    serial: str | None = None
    gtin: str | None = None
    lot: str | None = None
    sscc: str | None = None

    @property
    def key(self) -> str:
        """The value the `codes` table is keyed by."""
        return self.sscc or self.serial or ""


class UnreadableCode(ValueError):
    pass


SHORT_PATH_RE = re.compile(r"^/(?:s|c)/([A-Za-z2-7]{16})/?$")


def parse_code(text: str) -> ParsedCode:
    """Parse a GS1 Digital Link URI (any host), a legacy short URL (`/s/<serial>`), a bare serial or
    a bare SSCC. Raises UnreadableCode with a reason."""
    from biip.gs1_digital_link_uris import GS1DigitalLinkURI

    value = text.strip()
    if not value:
        raise UnreadableCode("The code is empty.")
    if SERIAL_RE.match(value.upper()) and len(value) == SERIAL_LENGTH:
        return ParsedCode(serial=value.upper())
    if value.isdigit() and len(value) == SSCC_LENGTH:
        if not is_valid_sscc(value):
            raise UnreadableCode("The SSCC's check digit is wrong.")
        return ParsedCode(sscc=value)
    if "://" not in value:
        raise UnreadableCode("Not a code of this platform: expected a link, a 16-character serial or an SSCC.")
    path = urlsplit(value).path
    short = SHORT_PATH_RE.match(path)
    if short:
        return ParsedCode(serial=short.group(1).upper())
    try:
        link = GS1DigitalLinkURI.parse(value)
    except Exception as exc:  # biip raises its own ParseError family
        raise UnreadableCode(f"Not a GS1 Digital Link: {exc}") from exc
    found = {element.ai.ai: element.value for element in link.element_strings}
    if "00" in found:
        if not is_valid_sscc(found["00"]):
            raise UnreadableCode("The SSCC's check digit is wrong.")
        return ParsedCode(sscc=found["00"])
    if "01" in found and "21" in found:
        if not ean.is_valid(found["01"]):
            raise UnreadableCode("The GTIN's check digit is wrong.")
        return ParsedCode(serial=found["21"], gtin=found["01"].zfill(14), lot=found.get("10"))
    raise UnreadableCode("The link names no serialised item (AI 21) or logistic unit (AI 00).")
