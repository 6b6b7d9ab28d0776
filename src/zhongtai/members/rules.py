"""Pure rules of real-name verification: the resident ID number, age, masking. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

from zhongtai.core.errors import ValidationFailed

ALCOHOL_MINIMUM_AGE = 18
NAME_MAX_CHARS = 40


@dataclass(frozen=True)
class ResidentId:
    number: str  # 18 characters, upper-case X
    birth_date: date
    region_code: str
    province: str


def check_resident_id(raw: str, *, today: date) -> ResidentId:
    """Validate a Chinese resident identity card number (GB 11643): length, check digit, birth date,
    region. Refuses with a reason a person can act on."""
    number = ric.compact(raw or "")
    field = "id_number"
    try:
        number = ric.validate(number)
    except stdnum_errors.InvalidLength as exc:
        raise ValidationFailed("An ID number has 18 characters.", field=field) from exc
    except stdnum_errors.InvalidFormat as exc:
        raise ValidationFailed("An ID number has 17 digits and then a digit or X.", field=field) from exc
    except stdnum_errors.InvalidChecksum as exc:
        raise ValidationFailed("The ID number's check digit is wrong; check the digits.", field=field) from exc
    except stdnum_errors.ValidationError as exc:
        raise ValidationFailed("The ID number has no valid birth date or region.", field=field) from exc
    birth = ric.get_birth_date(number)
    if birth > today:
        raise ValidationFailed("The ID number's birth date is in the future.", field=field)
    place = ric.get_birth_place(number)
    return ResidentId(number, birth, number[:6], place.get("province", ""))


def age_on(birth: date, today: date) -> int:
    """Completed years; someone born on 29 February turns a year older on 1 March in common years."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def check_name(raw: str) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise ValidationFailed("Enter the name as printed on the ID card.", field="name")
    if len(name) > NAME_MAX_CHARS or any(ch.isdigit() for ch in name):
        raise ValidationFailed("Enter the name as printed on the ID card.", field="name")
    return name


def mask_id_number(number: str) -> str:
    """110105194912310021 → 1101**********0021: region prefix and last four only."""
    return f"{number[:4]}{'*' * (len(number) - 8)}{number[-4:]}"


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***; Latin names keep their first letter."""
    return name[0] + "*" * max(1, len(name) - 1)
