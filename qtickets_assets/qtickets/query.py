"""The `where` / `select` grammar of the API's JSON body (qtickets_api.md §2.1, §6, §7).

Shared by the sandbox (which applies it like the server) and the client (which re-applies `where`
because the real server silently ignores what it does not understand).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MSK = ZoneInfo("Europe/Moscow")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d")
OPERATORS = ("=", "!=", "<", ">", "<=", ">=", "in", "not in", "null", "not null")
_COMPARE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le,
            ">=": operator.ge}


def parse_instant(value: str) -> datetime:
    """An API timestamp or a `YYYY-MM-DD HH:MM:SS` Moscow wall time (the where-literal format)."""
    parsed = datetime.fromisoformat(value.replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MSK)


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any]:
    if isinstance(actual, datetime) and isinstance(expected, str):
        return actual, parse_instant(expected)
    if isinstance(actual, str) and isinstance(expected, str) and TIMESTAMP.match(actual):
        return parse_instant(actual), parse_instant(expected)
    if isinstance(actual, bool):
        return int(actual), int(expected) if expected is not None else None
    return actual, expected


def dig(row: dict[str, Any], column: str) -> Any:
    """The value of a dotted column (`city.name`)."""
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def matches(row: dict[str, Any], conditions: Iterable[dict[str, Any]]) -> bool:
    """True when `row` satisfies every condition (they are ANDed)."""
    for cond in conditions:
        if not holds(dig(row, cond["column"]), cond):
            return False
    return True


def holds(actual: Any, cond: dict[str, Any]) -> bool:
    """True when the value `actual` of the condition's column satisfies it."""
    op = cond.get("operator", "=")
    if op == "null":
        return actual is None
    if op == "not null":
        return actual is not None
    if op in ("in", "not in"):
        values = [_comparable(actual, v)[1] for v in cond.get("value", [])]
        return (_comparable(actual, actual)[0] in values) == (op == "in")
    if actual is None:
        return False
    a, b = _comparable(actual, cond.get("value"))
    return _COMPARE[op](a, b)  # only the asked comparison: a row costs one, not six


def select_tree(columns: Iterable[str]) -> dict[str, Any]:
    """`["id", "city.name", "shows.id"]` -> `{"id": True, "city": {"name": True}, "shows": {"id": True}}`."""
    tree: dict[str, Any] = {}
    for column in columns:
        node = tree
        *parents, leaf = column.split(".")
        for part in parents:
            child = node.get(part)
            if child is True:  # the whole relation is already selected
                break
            node = node.setdefault(part, {})
        else:
            node[leaf] = True
    return tree


def project(value: Any, tree: dict[str, Any] | bool) -> Any:
    """Keep only the selected columns; relations (objects or lists of objects) are trimmed recursively."""
    if tree is True:
        return value
    if isinstance(value, list):
        return [project(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: project(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def selected_only(row: dict[str, Any], tree: dict[str, Any] | bool) -> bool:
    """True when `row` carries no column outside `tree` (i.e. the server honoured `select`)."""
    if tree is True:
        return True
    if isinstance(row, list):
        return all(selected_only(item, tree) for item in row)
    if not isinstance(row, dict):
        return True
    return all(key in tree and selected_only(value, tree[key]) for key, value in row.items())
