"""Segment and computed-tag expressions: a subset of CEL, parsed by cel-python's parser (`celpy`, a lark
grammar of the CEL spec) and compiled into vectorised evaluation over numpy columns of member facts.

Evaluation follows CEL's rules for values that are not there: a condition on a fact a member lacks is
an error, `!` keeps the error, `&&` is false when either side is false and `||` true when either side
is true, whatever the other side is; a member belongs to a segment only when the whole expression is
`true`. So `!(city == "杭州")` does not select members whose city is unknown.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import celpy
import numpy as np
import numpy.typing as npt
from celpy.celparser import CELParseError
from lark import Token, Tree

from zhongtai.core.errors import ValidationFailed

MAX_EXPRESSION_LENGTH = 2000
Bools = npt.NDArray[np.bool_]


class FactType(StrEnum):
    INT = "int"
    STRING = "string"
    STRING_LIST = "list of strings"


@dataclass(frozen=True)
class Fact:
    type: FactType
    description: str
    is_time_dependent: bool = False


FACTS: dict[str, Fact] = {
    "city": Fact(FactType.STRING, "city from the profile"),
    "gender": Fact(FactType.STRING, "gender from the profile (m, f …)"),
    "birthday_month": Fact(FactType.INT, "month of the birthday, 1–12"),
    "age": Fact(FactType.INT, "age in whole years (China Standard Time)", is_time_dependent=True),
    "stage": Fact(FactType.STRING, "lifecycle stage: new, active, at_risk, dormant, churned, won_back"),
    "recency_score": Fact(FactType.INT, "RFM recency quintile 1–5 (5 = bought most recently)"),
    "frequency_score": Fact(FactType.INT, "RFM frequency quintile 1–5"),
    "monetary_score": Fact(FactType.INT, "RFM monetary quintile 1–5"),
    "scans": Fact(FactType.INT, "verified scans"),
    "purchases": Fact(FactType.INT, "paid purchases"),
    "spend_fen": Fact(FactType.INT, "total paid, in fen"),
    "days_since_touch": Fact(FactType.INT, "whole days since the last touch", is_time_dependent=True),
    "channels": Fact(FactType.STRING_LIST, "channels the member was touched through"),
    "tags": Fact(FactType.STRING_LIST, "manual and computed tags"),
}

SUPPORTED = (
    "Supported: facts ("
    + ", ".join(FACTS)
    + "), string and integer literals, ==, !=, <, <=, >, >= (integers), `fact in [literals]`, "
    '`"value" in tags` / `"value" in channels`, &&, ||, ! and parentheses.'
)


class UnsupportedExpression(ValidationFailed):
    code = "unsupported_expression"


@dataclass
class Columns:
    """The facts of `size` members, one array per fact (object arrays for strings, `None` when missing;
    int arrays with a `present` mask), and per list fact the set of row numbers holding each value.

    A string fact may instead be dictionary-encoded: `values` holds small integer codes and
    `vocabularies[name]` maps each string to its code. Comparing millions of codes is an integer
    compare in C; comparing millions of Python strings is not (column-wise loading uses codes)."""

    size: int
    values: dict[str, npt.NDArray[Any]]
    present: dict[str, Bools]
    lists: dict[str, dict[str, Bools]]
    vocabularies: dict[str, dict[str, int]] = field(default_factory=dict)

    def operand(self, name: str, value: int | str | bool) -> int | str | bool:
        """The literal as this column holds it: its code in a dictionary-encoded column (-1, which no
        member has, when no member has that string)."""
        vocabulary = self.vocabularies.get(name)
        if vocabulary is None or not isinstance(value, str):
            return value
        return vocabulary.get(value, -1)


@dataclass(frozen=True)
class Tri:
    """A vectorised CEL boolean: `value` where `error` is false; `error` where a fact was missing."""

    value: Bools
    error: Bools


Program = Callable[[Columns], Tri]


@dataclass(frozen=True)
class Compiled:
    expression: str
    facts: frozenset[str]
    run: Program

    @property
    def is_time_dependent(self) -> bool:
        return any(FACTS[name].is_time_dependent for name in self.facts)

    def matches(self, columns: Columns) -> Bools:
        result = self.run(columns)
        return result.value & ~result.error


def _refuse(what: str) -> UnsupportedExpression:
    return UnsupportedExpression(f"{what} {SUPPORTED}", field="expression")


def compile_expression(expression: str, *, allow_tags: bool = True) -> Compiled:
    """Parse with the CEL grammar and compile the supported subset; refuse anything else (422)."""
    text = (expression or "").strip()
    if not text:
        raise _refuse("Write an expression.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise _refuse(f"The expression is longer than {MAX_EXPRESSION_LENGTH} characters.")
    try:
        tree = celpy.Environment().compile(text)
    except CELParseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise _refuse(f"This is not a valid CEL expression ({first}).") from exc
    compiler = _Compiler(allow_tags)
    run = compiler.boolean(tree)
    return Compiled(text, frozenset(compiler.facts), run)


# --- the compiler ----------------------------------------------------------------------------------


def _only(tree: Tree[Any]) -> Tree[Any]:
    child = tree.children[0]
    if not isinstance(child, Tree):
        raise _refuse("Unexpected token.")
    return child


_COMPARISONS = {
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
}
_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class _Fact:
    name: str


@dataclass(frozen=True)
class _Literal:
    value: int | str | bool


@dataclass(frozen=True)
class _List:
    items: tuple[int | str, ...]


_Operand = _Fact | _Literal | _List


class _Compiler:
    def __init__(self, allow_tags: bool) -> None:
        self.allow_tags = allow_tags
        self.facts: set[str] = set()

    def boolean(self, tree: Tree[Any]) -> Program:
        """A node that must yield a boolean (the whole expression, each side of && and ||, `!`'s operand)."""
        kind = str(tree.data)
        if kind == "expr":
            if len(tree.children) != 1:
                raise _refuse("The conditional operator `? :` is not supported.")
            return self.boolean(_only(tree))
        if kind in ("conditionalor", "conditionaland"):
            if len(tree.children) == 1:
                return self.boolean(_only(tree))
            left, right = (self.boolean(c) for c in tree.children)
            return _or(left, right) if kind == "conditionalor" else _and(left, right)
        if kind == "relation":
            if len(tree.children) == 1:
                return self.boolean(_only(tree))
            return self.relation(tree)
        if kind in ("addition", "multiplication", "member", "primary", "paren_expr"):
            if len(tree.children) != 1:
                raise _refuse("Arithmetic is not supported.")
            return self.boolean(_only(tree))
        if kind == "unary":
            return self.unary(tree)
        if kind == "literal":
            value = _literal(tree)
            if not isinstance(value, bool):
                raise _refuse(f"{value!r} is not a condition.")
            return _constant(value)
        if kind == "ident":
            raise _refuse(f"`{tree.children[0]}` alone is not a condition; compare it with a value.")
        raise _refuse(f"`{_describe(kind)}` is not supported.")

    def unary(self, tree: Tree[Any]) -> Program:
        if len(tree.children) == 1:
            return self.boolean(_only(tree))
        operator, operand = tree.children
        if isinstance(operator, Tree) and str(operator.data) == "unary_not":
            return _not(self.boolean(operand))
        raise _refuse("Negative numbers are written as literals (`-3`); `-` on a fact is not supported.")

    def relation(self, tree: Tree[Any]) -> Program:
        head, right_tree = tree.children
        operator = str(head.data)
        left = self.operand(head.children[0])
        right = self.operand(right_tree)
        if operator == "relation_in":
            return self.membership(left, right)
        if operator not in _COMPARISONS:
            raise _refuse(f"`{_describe(operator)}` is not supported.")
        op = _COMPARISONS[operator]
        if isinstance(left, _Literal) and isinstance(right, _Fact):
            left, right, op = right, left, _MIRRORED[op]
        if not (isinstance(left, _Fact) and isinstance(right, _Literal)):
            raise _refuse("Each comparison needs one fact and one literal (`age >= 18`).")
        return self.comparison(left.name, op, right.value)

    def operand(self, node: Any) -> _Operand:
        while isinstance(node, Tree) and len(node.children) == 1 and str(node.data) != "literal":
            if str(node.data) in ("ident", "list_lit"):
                break
            node = node.children[0]
        if not isinstance(node, Tree):
            raise _refuse("Unexpected token.")
        kind = str(node.data)
        if kind == "ident":
            return _Fact(self.fact(str(node.children[0])))
        if kind == "literal":
            return _Literal(_literal(node))
        if kind == "list_lit":
            return _List(self.list_items(node))
        if kind == "unary" and len(node.children) == 2 and str(node.children[0].data) == "unary_neg":
            inner = self.operand(node.children[1])
            if isinstance(inner, _Literal) and type(inner.value) is int:
                return _Literal(-inner.value)
            raise _refuse("`-` applies to integer literals only.")
        raise _refuse(f"`{_describe(kind)}` is not supported where a fact or a literal is expected.")

    def list_items(self, node: Tree[Any]) -> tuple[int | str, ...]:
        if not node.children:
            return ()
        items = []
        for child in node.children[0].children:
            item = self.operand(child)
            if not isinstance(item, _Literal) or isinstance(item.value, bool):
                raise _refuse("A list holds string or integer literals only.")
            items.append(item.value)
        return tuple(items)

    def fact(self, name: str) -> str:
        if name not in FACTS:
            raise _refuse(f"Unknown fact `{name}`.")
        if name == "tags" and not self.allow_tags:
            raise _refuse("A computed tag cannot depend on tags.")
        self.facts.add(name)
        return name

    def comparison(self, name: str, op: str, value: int | str | bool) -> Program:
        fact = FACTS[name]
        if fact.type is FactType.STRING_LIST:
            raise _refuse(f'`{name}` is a list; ask `"value" in {name}`.')
        _check_type(name, fact.type, value)
        if fact.type is FactType.STRING and op not in ("==", "!="):
            raise _refuse(f"`{name}` is a string: compare it with == or != only.")
        compare = _NUMPY_OPS[op]

        def run(columns: Columns) -> Tri:
            present = columns.present[name]
            found = compare(columns.values[name], columns.operand(name, value))
            return Tri(np.asarray(found, dtype=np.bool_) & present, ~present)

        return run

    def membership(self, left: _Operand, right: _Operand) -> Program:
        if isinstance(left, _Literal) and isinstance(right, _Fact):
            fact = FACTS[right.name]
            if fact.type is not FactType.STRING_LIST or not isinstance(left.value, str):
                raise _refuse(f'`"value" in {right.name}` needs a string and a list fact (tags, channels).')
            return _has(right.name, left.value)
        if isinstance(left, _Fact) and isinstance(right, _List):
            fact = FACTS[left.name]
            if fact.type is FactType.STRING_LIST:
                raise _refuse(f'`{left.name}` is a list; ask `"value" in {left.name}`.')
            for item in right.items:
                _check_type(left.name, fact.type, item)
            return _isin(left.name, right.items)
        raise _refuse('`in` is written `fact in [literals]` or `"value" in tags`.')


def _check_type(name: str, expected: FactType, value: object) -> None:
    if expected is FactType.INT and type(value) is not int:
        raise _refuse(f"`{name}` is a whole number; compare it with an integer, not {value!r}.")
    if expected is FactType.STRING and not isinstance(value, str):
        raise _refuse(f"`{name}` is a string; compare it with a quoted string, not {value!r}.")


def _literal(node: Tree[Any]) -> int | str | bool:
    token = node.children[0]
    assert isinstance(token, Token)
    text = str(token)
    if token.type == "BOOL_LIT":
        return text == "true"
    if token.type == "INT_LIT":
        return int(text, 0)
    if token.type == "STRING_LIT":
        value = ast.literal_eval(text)
        if isinstance(value, str):
            return value
    raise _refuse(f"The literal {text} is not supported (strings, integers, true and false are).")


def _describe(kind: str) -> str:
    names = {
        "member_dot": "field access (a.b)",
        "member_dot_arg": "method calls",
        "member_index": "indexing",
        "ident_arg": "function calls",
        "map_lit": "map literals",
        "list_lit": "a list here",
        "relation_in": "in",
        "addition": "arithmetic (+ -)",
        "multiplication": "arithmetic (* / %)",
    }
    return names.get(kind, kind)


# --- vectorised three-valued logic ---------------------------------------------------------------


def _constant(value: bool) -> Program:
    def run(columns: Columns) -> Tri:
        return Tri(np.full(columns.size, value, dtype=np.bool_), np.zeros(columns.size, dtype=np.bool_))

    return run


def _not(inner: Program) -> Program:
    def run(columns: Columns) -> Tri:
        result = inner(columns)
        return Tri(~result.value & ~result.error, result.error)

    return run


def _and(left: Program, right: Program) -> Program:
    def run(columns: Columns) -> Tri:
        a, b = left(columns), right(columns)
        false = (~a.value & ~a.error) | (~b.value & ~b.error)
        error = ~false & (a.error | b.error)
        return Tri(~false & ~error, error)

    return run


def _or(left: Program, right: Program) -> Program:
    def run(columns: Columns) -> Tri:
        a, b = left(columns), right(columns)
        true = (a.value & ~a.error) | (b.value & ~b.error)
        error = ~true & (a.error | b.error)
        return Tri(true, error)

    return run


def _has(name: str, value: str) -> Program:
    def run(columns: Columns) -> Tri:
        found = columns.lists[name].get(value)
        if found is None:
            found = np.zeros(columns.size, dtype=np.bool_)
        return Tri(found, np.zeros(columns.size, dtype=np.bool_))

    return run


def _isin(name: str, items: tuple[int | str, ...]) -> Program:
    def run(columns: Columns) -> Tri:
        present = columns.present[name]
        values = columns.values[name]
        wanted = set(items)
        if name in columns.vocabularies:  # a few integer compares beat a sort-based isin
            found = np.zeros(columns.size, dtype=np.bool_)
            for item in wanted:
                found |= values == columns.operand(name, item)
        elif values.dtype == object:  # strings with None for missing: no sort-based isin
            found = np.fromiter((v in wanted for v in values), dtype=np.bool_, count=columns.size)
        else:
            found = np.isin(values, np.array(sorted(wanted), dtype=values.dtype))
        return Tri(found & present, ~present)

    return run
