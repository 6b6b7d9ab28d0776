"""Translations for console and H5 pages. Source strings are English; catalogs map them per locale.

`zh-CN` is the default locale. A test checks that every string a template marks with `_()` has a
Chinese translation, so a page never shows half-translated.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
LOCALE_COOKIE = "zt_lang"
_DIR = Path(__file__).parent


@cache
def catalog(locale: str) -> dict[str, str]:
    if locale == "en":
        return {}
    path = _DIR / f"{locale.replace('-', '_')}.json"
    loaded: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def translate(locale: str, message: str, **values: object) -> str:
    text = catalog(locale).get(message, message) if locale in LOCALES else message
    return text.format(**values) if values else text


def pick_locale(cookie: str | None, accept_language: str | None, default: str = DEFAULT_LOCALE) -> str:
    if cookie in LOCALES:
        return cookie
    if accept_language:
        first = accept_language.split(",")[0].strip().lower()
        if first.startswith("en"):
            return "en"
        if first.startswith("zh"):
            return "zh-CN"
    return default
