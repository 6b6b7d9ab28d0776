"""JSON the platform accepts, and values made safe to send back.

`loads` is the one parser of request documents: it refuses what JSON cannot carry back out or what
no text field should hold — `NaN` and `Infinity`, numbers too large for a float (`1e400` would become
infinity), lone UTF-16 surrogates (`"\\ud800"`), NUL characters — and documents nested deeper than
`MAX_DEPTH`. Each refusal names the place by a JSON pointer.

`echo_safe` turns a value into one that always renders as JSON, for error messages that quote what
the client sent (a non-finite float becomes its text, an unpaired surrogate U+FFFD).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside one another


class JsonRefused(ValueError):
    """A request document the platform does not accept; `pointer` locates the value."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


def _constant(name: str) -> Any:
    raise JsonRefused("", f"{name} is not a number JSON can carry; send a finite number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("", f"the number {text[:40]} is too large")
    return value


def text_problem(value: str) -> str | None:
    """Why a text is refused (a NUL character, an unpaired surrogate), or None."""
    if "\x00" in value:
        return "text must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (an unpaired surrogate was sent)"
    return None


def _step(pointer: str, key: object) -> str:
    return f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"


def check(document: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonRefused for the first refused value of a parsed document (iterative: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, pointer, depth = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise JsonRefused(pointer, problem)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise JsonRefused(pointer, "numbers must be finite")
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                raise JsonRefused(pointer, f"the document is nested deeper than {max_depth} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    problem = text_problem(key)
                    if problem:
                        raise JsonRefused(pointer, f"a member name: {problem}")
                    stack.append((item, _step(pointer, key), depth + 1))
            else:
                stack.extend((item, _step(pointer, i), depth + 1) for i, item in enumerate(value))


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request document and `check` it. Raises JsonRefused, or ValueError (json.JSONDecodeError,
    UnicodeDecodeError) for text that is not JSON at all."""
    try:
        document = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise JsonRefused("", f"the document is nested deeper than {max_depth} levels") from None
    check(document, max_depth=max_depth)
    return document


_SURROGATE = re.compile("[\ud800-\udfff]")


def _safe_text(value: str) -> str:
    return value if value.isascii() or text_problem(value) is None else _SURROGATE.sub("\ufffd", value)


def echo_safe(value: Any, _depth: int = 0) -> Any:
    """`value` with every non-finite float as text and every string re-encoded (unpaired surrogates
    become U+FFFD), so that it renders as JSON; nesting beyond `MAX_DEPTH` is cut to "…"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list | tuple) and _depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {_safe_text(str(k)): echo_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [echo_safe(v, _depth + 1) for v in value]
    return value
