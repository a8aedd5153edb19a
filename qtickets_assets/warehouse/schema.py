"""The warehouse's tables as the migrations declare them, read from the SQL files without an engine.

The migrations are the one definition of every table: its columns (name and ClickHouse type) and its
sorting key, after every `CREATE TABLE` and `ALTER TABLE … ADD/DROP/MODIFY/RENAME COLUMN` in order.
Asset metadata (`dagster/column_schema`) and the marts' business keys are taken from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .migrations import MIGRATIONS_DIR, MigrationError, _closing_paren, _code_only, discover

TECHNICAL = ("_loaded_at", "_ver", "_dedup_key", "_deleted")  # written by writes.py, not by a SELECT

_NAME = r"`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)`?"
_CREATE = re.compile(rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*\(", re.I)
_ALTER = re.compile(rf"^\s*ALTER\s+TABLE\s+{_NAME}\s+(?P<actions>.*)$", re.I | re.S)
_DROP = re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+(?P<key>\([^)]*\)|[A-Za-z_][A-Za-z0-9_]*)", re.I)
# Where a column's type ends in its definition.
_TYPE_END = re.compile(r"\s(?:DEFAULT|MATERIALIZED|ALIAS|EPHEMERAL|CODEC|TTL|COMMENT|NULL|NOT)\b", re.I)
_NOT_A_COLUMN = re.compile(r"^\s*(?:INDEX|PROJECTION|CONSTRAINT|PRIMARY\s+KEY)\b", re.I)
_ACTION = re.compile(
    r"^\s*(?P<verb>ADD|DROP|MODIFY|RENAME)\s+COLUMN\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<rest>.*)$",
    re.I | re.S,
)

_PLACE = re.compile(r"\s+(?:AFTER\s+(?P<after>\S+)|FIRST)\s*$", re.I)


@dataclass
class Table:
    name: str
    columns: dict[str, str] = field(default_factory=dict)  # name -> ClickHouse type, in table order
    order_by: list[str] = field(default_factory=list)

    @property
    def business_columns(self) -> list[str]:
        return [name for name in self.columns if name not in TECHNICAL]


def _split_top_level(code: str) -> list[str]:
    """`code` split on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(code):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(code[start:i])
            start = i + 1
    parts.append(code[start:])
    return [part.strip() for part in parts if part.strip()]


def _column(definition: str) -> tuple[str, str]:
    name, _, rest = definition.strip().partition(" ")
    end = _TYPE_END.search(" " + rest)
    return name.strip("`"), (rest if end is None else rest[: end.start()]).strip()


def _alter(table: Table, actions: str, original: str) -> None:
    for action in _split_top_level(actions):
        match = _ACTION.match(action)
        if match is None:
            continue  # not about columns (indexes, TTL, settings)
        verb, rest = match["verb"].upper(), match["rest"]
        if verb in ("ADD", "MODIFY"):
            place = _PLACE.search(rest)
            name, kind = _column(rest[: place.start()] if place else rest)
            kind = kind or table.columns.get(name, "")  # MODIFY COLUMN x COMMENT/TTL/…: the type stays
            items = [(n, t) for n, t in table.columns.items() if n != name]
            if place is None:
                at = list(table.columns).index(name) if name in table.columns else len(items)
            else:
                after = place["after"]
                at = 0 if after is None else [n for n, _ in items].index(after.strip("`")) + 1
            items.insert(at, (name, kind))
            table.columns = dict(items)
        elif verb == "DROP":
            table.columns.pop(rest.split()[0].strip("`"), None)
        else:  # RENAME COLUMN a TO b
            old, _, new = (word.strip("`") for word in rest.split()[:3])
            table.columns = {(new if n == old else n): t for n, t in table.columns.items()}
    if not table.columns:
        raise MigrationError(f"no columns left after: {original[:80]}")


@cache
def tables(directory: Path = MIGRATIONS_DIR) -> dict[str, Table]:
    """Every table the migrations leave behind (views excluded), by name."""
    found: dict[str, Table] = {}
    for migration in discover(directory):
        for statement in migration.statements():
            statement = re.sub(r"--[^\n]*", "", statement)  # comments after a column
            code = _code_only(statement)
            if match := _CREATE.match(code):
                opening = match.end() - 1
                closing = _closing_paren(code, opening)
                table = Table(match["name"])
                for definition in _split_top_level(statement[opening + 1 : closing]):
                    if not _NOT_A_COLUMN.match(definition):
                        name, kind = _column(definition)
                        table.columns[name] = kind
                if order := _ORDER_BY.search(code, closing):
                    table.order_by = [c.strip().strip("`") for c in order["key"].strip("()").split(",")]
                found[table.name] = table
            elif (match := _ALTER.match(code)) and match["name"] in found:
                _alter(found[match["name"]], statement[match.start("actions") :], statement)
            elif match := _DROP.match(code):
                found.pop(match["name"], None)
    return found


def table(name: str) -> Table:
    return tables()[name]
