"""Every string a page shows has a Simplified Chinese translation, with the same placeholders.

Sources: `_("…")` in every template, `tr(request, "…")` in the page modules, the navigation, role,
status, scope and action labels, the consumer sign-in answers, and the service errors operators see.
Add an English string without its translation in `src/zhongtai/i18n/zh_CN.json` and this fails.
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import jinja2
import pytest

from zhongtai import domains
from zhongtai.channel import console as channel_console
from zhongtai.channel import h5_pages as channel_h5
from zhongtai.console import admin_pages, ops_pages
from zhongtai.core import errors as core_errors
from zhongtai.core.permissions import PERMISSIONS
from zhongtai.core.permissions import ROLE_LABELS as CORE_ROLE_LABELS
from zhongtai.h5 import pages as h5_pages
from zhongtai.i18n import catalog, translate
from zhongtai.kit import rendering
from zhongtai.lottery import console as lottery_console
from zhongtai.lottery import h5 as lottery_h5
from zhongtai.trace import steps as trace_steps

domains.load_all()  # every module's permissions and navigation entries
SRC = Path(rendering.__file__).resolve().parents[1]
TEMPLATES = sorted(SRC.glob("*/templates/**/*.html"))
PAGE_MODULES = sorted(SRC.rglob("*.py"))
# Services whose refusals operators and consumers read on screen.
SERVICE_MODULES = [SRC / "core" / name for name in ("accounts.py", "signin.py", "jobs.py", "consumers.py", "web.py")]
ERROR_CLASSES = ("BadRequest", "ValidationFailed", "Unauthenticated", "PermissionDenied", "NotFound", "Conflict")
ERROR_CLASSES += ("RateLimited", "WrongOtp", "CsrfFailed")


def _template_strings() -> set[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    found: set[str] = set()
    for path in TEMPLATES:
        for _line, function, message in env.extract_translations(path.read_text(encoding="utf-8")):
            if function != "_":
                continue
            first = message[0] if isinstance(message, tuple) else message
            if isinstance(first, str):
                found.add(first)
    return found


def _tr_calls() -> set[str]:
    found: set[str] = set()
    for path in PAGE_MODULES:
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r'\btr\(\s*request,\s*"((?:[^"\\]|\\.)+)"', text))
        # messages of the kit's archive routes (`kit.crud.add_archive_routes`), translated when shown
        found.update(re.findall(r'\b(?:archived|restored)_message="((?:[^"\\]|\\.)+)"', text))
    return found


def _home_labels() -> set[str]:
    """Titles, figure and series labels and notes of the console home's sections (`kit.home`), which the
    home page translates when it shows them."""
    found: set[str] = set()
    for path in sorted(SRC.glob("*/home.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            first = node.args[0] if node.args else None
            if (
                node.func.id in ("Figure", "Series")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.add(first.value)
            for keyword in node.keywords:
                if keyword.arg in ("title", "note") and isinstance(keyword.value, ast.Constant):
                    found.add(str(keyword.value.value))
    return found


def _service_messages() -> set[str]:
    """Literal messages passed to error classes: `raise Conflict("…")` (f-strings are in ERROR_TEMPLATES)."""
    found: set[str] = set()
    for path in SERVICE_MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ERROR_CLASSES
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def _default_messages() -> set[str]:
    return {
        cls.default_message
        for cls in vars(core_errors).values()
        if isinstance(cls, type) and issubclass(cls, core_errors.AppError)
    }


def all_source_strings() -> dict[str, set[str]]:
    return {
        "templates": _template_strings(),
        "page modules": _tr_calls(),
        "navigation": {item.label for item in rendering.NAV} | set(rendering.NAV_GROUPS.values()),
        "console home": _home_labels(),
        "roles": set(rendering.ROLE_LABELS.values()),
        "scopes": {p.description for p in PERMISSIONS.values()},
        "job statuses": set(ops_pages.JOB_STATUS_LABELS.values()),
        "audit actions": set(ops_pages.AUDIT_ACTION_LABELS.values()) | set(ops_pages.ACTOR_KIND_LABELS.values()),
        "token expiry": {label for _value, label in admin_pages.TOKEN_EXPIRY_CHOICES},
        "error templates": set(rendering.ERROR_TEMPLATES),
        "service errors": _service_messages() | _default_messages(),
        "password problems": {"Use a less repetitive password.", "This password is too common."},
        "consumer sign-in": set(h5_pages.CONSUMER_MESSAGES) | set(h5_pages.CONSUMER_ERROR_CODES.values()),
        "partner sign-in": set(channel_h5.PARTNER_MESSAGES)
        | set(channel_h5.PARTNER_ERROR_CODES.values())
        | set(channel_h5.ROLE_WORDS.values())
        | set(channel_console.ROLE_LABELS.values())
        | set(channel_console.STATUS_LABELS.values()),
        "trace steps": set(trace_steps.BIZ_STEP_WORDS.values())
        | set(trace_steps.ACTION_WORDS.values())
        | set(trace_steps.ERROR_REASON_WORDS.values())
        | {trace_steps.reason_words(None)},
        "lottery h5": set(lottery_h5.LOTTERY_ERROR_MESSAGES.values())
        | set(lottery_h5.RESULT_LABELS.values())
        | set(lottery_console.STATUS_LABELS.values()),
    }


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_extraction_finds_the_strings() -> None:
    assert SRC / "console" / "templates" / "console" / "users.html" in TEMPLATES
    strings = all_source_strings()
    assert "Sign in" in strings["templates"]
    assert "Revoke the token {name}? Integrations using it stop working at once." in strings["templates"]
    assert "User {email} was created." in strings["page modules"]
    assert "Email or password is wrong, or the account is disabled." in strings["service errors"]
    assert "Users" in strings["navigation"]
    assert "Consumers and members" in strings["navigation"]
    assert {"Authenticity", "Suspicious verdicts", "{left} of {funded} budget left"} <= strings["console home"]
    assert all(len(found) > 0 for found in strings.values()), strings


@pytest.mark.parametrize("source", sorted(all_source_strings()))
def test_every_string_has_a_chinese_translation(source: str) -> None:
    zh = catalog("zh-CN")
    missing = sorted(s for s in all_source_strings()[source] if not zh.get(s, "").strip())
    assert missing == [], f"add these {source} strings to src/zhongtai/i18n/zh_CN.json: {missing}"


def test_translations_keep_their_placeholders() -> None:
    wrong = {english: chinese for english, chinese in catalog("zh-CN").items() if _fields(english) != _fields(chinese)}
    assert wrong == {}


def test_role_labels_match_the_role_table() -> None:
    for role, (english, chinese) in CORE_ROLE_LABELS.items():
        assert translate("zh-CN", english) == chinese, role


def test_service_errors_with_values_are_translated() -> None:
    message = "Password refused: Use at least 10 characters."
    assert rendering.localize_message("zh-CN", message) == "密码不可用：至少使用 10 个字符。"
    assert rendering.localize_message("en", message) == message
    assert rendering.localize_message("zh-CN", "Something nobody translated.") == "Something nobody translated."
    assert (
        rendering.localize_message("zh-CN", "This page needs the permission 'users.read'.")
        == "此页面需要权限 “users.read”。"
    )
