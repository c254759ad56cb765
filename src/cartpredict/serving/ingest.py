"""Event files in: CSV or JSON lines, one event per row, each naming its ``retailer_id``.

JSON lines carry the same event objects as ``POST /events`` plus ``retailer_id``. CSV has the
columns ``retailer_id, event_id, type, cart_id, at, cart_value, item_count, device_type,
shipping_speed`` and one ``attributes.<name>`` column per custom attribute (empty = absent).
A file is all or nothing: every bad line is reported and nothing is stored.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cartpredict.core.errors import RetailerNotFound, field_path
from cartpredict.serving.events import EventService
from cartpredict.serving.schemas import Event
from cartpredict.serving.tenants import Tenants

_EVENT = TypeAdapter(Event)
_NUMBERS = {"cart_value": float, "item_count": int}
ATTRIBUTE_PREFIX = "attributes."


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class InvalidFile(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s); nothing was stored")


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """(line number, raw event object or a Problem), for .csv or JSON lines."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                yield 0, _from_csv(row)
        return
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, Problem(number, "line", f"malformed JSON: {exc.msg}")
                continue
            if not isinstance(value, dict):
                yield number, Problem(number, "line", "expected a JSON object")
                continue
            yield number, value


def _from_csv(row: Mapping[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, text in row.items():
        if key is None or text is None or text == "":
            continue
        if key.startswith(ATTRIBUTE_PREFIX):
            attributes[key.removeprefix(ATTRIBUTE_PREFIX)] = _number_or_text(text)
        elif key in _NUMBERS:
            event[key] = _number_or_text(text, _NUMBERS[key])
        else:
            event[key] = text
    if attributes:
        event["attributes"] = attributes
    return event


def _number_or_text(text: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text


def load(path: Path, *, tenants: Tenants, events: EventService) -> dict[str, tuple[int, int]]:
    """Validate the whole file, then store it; retailer id -> (events in file, newly stored)."""
    problems: list[Problem] = []
    grouped: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for index, (line, raw) in enumerate(read_rows(path), start=1):
        line = line or index + 1  # CSV: the header is line 1
        if isinstance(raw, Problem):
            problems.append(raw)
            continue
        retailer_id = raw.pop("retailer_id", None)
        if not isinstance(retailer_id, str):
            problems.append(Problem(line, "retailer_id", "missing"))
            continue
        try:
            grouped[retailer_id].append((line, _EVENT.validate_python(raw)))
        except ValidationError as exc:
            problems += [
                Problem(
                    line, field_path(e["loc"]) or "event", e["msg"].removeprefix("Value error, ")
                )
                for e in exc.errors()
            ]
    retailers = {}
    for retailer_id, rows in grouped.items():
        try:
            retailers[retailer_id] = tenants.load(retailer_id).retailer
        except RetailerNotFound:
            problems.append(Problem(rows[0][0], "retailer_id", f"no retailer '{retailer_id}'"))
            continue
        found = events.problems(retailers[retailer_id], [event for _, event in rows], prefix="")
        for item in found:
            position, _, field = item["field"].partition(".")
            problems.append(Problem(rows[int(position)][0], field, item["reason"]))
    if problems:
        raise InvalidFile(sorted(problems, key=lambda p: p.line))
    return {
        rid: (len(rows), events.ingest(retailers[rid], [event for _, event in rows]))
        for rid, rows in grouped.items()
    }
