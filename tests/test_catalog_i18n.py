"""Every catalog string an operator reads has a Simplified Chinese translation with the same
placeholders: template `_()` strings, `tr()` calls, rule and import problem templates, error messages,
navigation, permission descriptions."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import jinja2

from zhongtai.catalog import console, errors, importer, rules
from zhongtai.catalog.permissions import CATALOG_READ, CATALOG_WRITE
from zhongtai.core.permissions import PERMISSIONS
from zhongtai.i18n import catalog
from zhongtai.kit.rendering import NAV

CATALOG_DIR = Path(rules.__file__).parent
# Calls whose argument at this position is an English message (template) that operators read.
MESSAGE_ARGUMENT = {"Problem": 1, "RowError": 2, "tr": 1, "ImportUnreadable": 0, "ImportTooLarge": 0}


def _template_strings() -> set[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    found: set[str] = set()
    for path in sorted((CATALOG_DIR / "templates").rglob("*.html")):
        for _line, function, message in env.extract_translations(path.read_text(encoding="utf-8")):
            first = message[0] if isinstance(message, tuple) else message
            if function == "_" and isinstance(first, str):
                found.add(first)
    return found


def _code_strings() -> set[str]:
    found: set[str] = set()
    for module in (rules, importer, console, errors):
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            position = MESSAGE_ARGUMENT.get(name)
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.add(argument.value)
    return found


def _all() -> set[str]:
    return (
        _template_strings()
        | _code_strings()
        | {item.label for item in NAV if item.href.startswith("/console/catalog")}
        | {PERMISSIONS[CATALOG_READ].description, PERMISSIONS[CATALOG_WRITE].description}
        | set(console.STATUS_LABELS.values())
        | {
            cls.default_message
            for cls in vars(errors).values()
            if isinstance(cls, type) and hasattr(cls, "default_message")
        }
        | {
            "A product with GTIN {gtin} already exists.",
            "This product already has a lot {lot_number}.",
            "The file is larger than {megabytes} MB; split it into smaller files.",
        }
    )


def test_extraction_finds_the_strings() -> None:
    found = _all()
    assert "New product" in found
    assert "Wrong check digit in GTIN {gtin}: expected {expected}, got {given}." in found
    assert "GTIN {gtin} is also on row {row}." in found
    assert "Product {name} was created." in found
    assert "Products" in found


def test_every_catalog_string_has_a_chinese_translation() -> None:
    zh = catalog("zh-CN")
    missing = sorted(s for s in _all() if not zh.get(s, "").strip())
    assert missing == [], f"add these strings to src/zhongtai/i18n/zh_CN.json: {missing}"


def test_translations_keep_placeholders() -> None:
    def fields(text: str) -> set[str]:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}

    zh = catalog("zh-CN")
    assert {s: zh[s] for s in _all() if s in zh and fields(s) != fields(zh[s])} == {}
