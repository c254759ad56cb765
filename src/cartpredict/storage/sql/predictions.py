"""Predictions (raw: the log and the counts) and their daily aggregates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from cartpredict.storage.base import DailyStats, Decided, ScoredCart
from cartpredict.storage.sql.session import SqlSession, living, record_change, utc
from cartpredict.storage.tables import (
    budget_cutoffs,
    daily_stats,
    prediction_counts,
    prediction_log,
)

_LOG_COLUMNS = (
    "retailer_id, at, cart_id, model_version, p_abandoned, abandoned, cart_value, item_count, "
    "device_type, shipping_speed, policy_version, arm, action, held_out, send_after_hours, "
    "expected_gain, reason, explored, propensity"
)
_NO_DECISION = (None,) * 9


def _decided(r: Any) -> Decided | None:
    if r.arm is None:
        return None
    propensity = 1.0 if r.propensity is None else float(r.propensity)
    return Decided(r.policy_version, r.arm, r.action, r.held_out, r.send_after_hours,
                   r.expected_gain, r.reason, bool(r.explored), propensity)  # fmt: skip


class PredictionRows(SqlSession):
    def add_scored_carts(self, *, carts: Sequence[ScoredCart], history: bool = False) -> None:
        """Executemany at the driver: a busy server logs thousands of rows a second, and
        SQLAlchemy's per-row processing would more than double the cost. With row-level
        security (PostgreSQL) one per retailer, each in that retailer's scope; without it
        (SQLite) one for every retailer's rows, after one look-up of which retailers exist:
        a second of a thousand retailers' predictions is then two statements, not two
        thousand. Rows of a retailer deleted meanwhile (or deleted and created again since)
        are dropped: see ``living``."""
        if not carts:
            return
        sqlite = self._engine.dialect.name == "sqlite"
        mark = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        statement = f"INSERT INTO prediction_log ({_LOG_COLUMNS}) VALUES ({', '.join([mark] * 19)})"
        by_retailer: dict[str, list[ScoredCart]] = {}
        for cart in carts:
            by_retailer.setdefault(cart.retailer_id, []).append(cart)

        def rows(mine: list[ScoredCart], born: datetime) -> list[tuple[Any, ...]]:
            # (by position: the log's first ten columns are the cart's first ten fields)
            return [
                (c[0], _sqlite_time(c[1]) if sqlite else c[1], *c[2:8], str(c[8]), str(c[9]),
                 *(_NO_DECISION if c[10] is None else c[10]))
                for c in mine
                if history or born <= c.at
            ]  # fmt: skip

        with self._write() as conn:
            if not self._row_level_security:
                alive = living(conn, set(by_retailer))
                every = [
                    row
                    for retailer_id, mine in sorted(by_retailer.items())
                    if retailer_id in alive
                    for row in rows(mine, alive[retailer_id])
                ]
                if every:
                    conn.exec_driver_sql(statement, every)
                return
            for retailer_id, mine in sorted(by_retailer.items()):
                self._scope(conn, retailer_id)
                born = living(conn, {retailer_id}).get(retailer_id)
                if born is None:
                    continue
                mine_rows = rows(mine, born)
                if mine_rows:
                    conn.exec_driver_sql(statement, mine_rows)

    def scored_carts(
        self, *, retailer_id: str, start: datetime, end: datetime
    ) -> Sequence[ScoredCart]:
        log = prediction_log.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(prediction_log)
                .where(log.retailer_id == retailer_id, log.at >= start, log.at < end)
                .order_by(log.at, log.id)
            ).all()
        return [
            ScoredCart(
                retailer_id=r.retailer_id,
                at=r.at,
                cart_id=r.cart_id,
                model_version=r.model_version,
                p_abandoned=r.p_abandoned,
                abandoned=bool(r.abandoned),
                cart_value=r.cart_value,
                item_count=r.item_count,
                device_type=r.device_type,
                shipping_speed=r.shipping_speed,
                decision=_decided(r),
            )
            for r in rows
        ]

    def budget_cutoff(self, *, retailer_id: str) -> tuple[int, float] | None:
        with self._read(retailer_id) as conn:
            row = conn.execute(
                select(budget_cutoffs.c.policy_version, budget_cutoffs.c.cutoff).where(
                    budget_cutoffs.c.retailer_id == retailer_id
                )
            ).first()
        return None if row is None else (int(row.policy_version), float(row.cutoff))

    def set_budget_cutoff(
        self, *, retailer_id: str, policy_version: int, cutoff: float | None, at: datetime
    ) -> None:
        table = budget_cutoffs
        with self._write(retailer_id) as conn:
            if not living(conn, {retailer_id}):
                return
            current = conn.execute(
                select(table.c.policy_version, table.c.cutoff).where(
                    table.c.retailer_id == retailer_id
                )
            ).first()
            was = None if current is None else (current.policy_version, current.cutoff)
            if was == (None if cutoff is None else (policy_version, cutoff)):
                return  # unchanged: no change for the workers to hear of
            conn.execute(delete(table).where(table.c.retailer_id == retailer_id))
            if cutoff is not None:
                row = {"retailer_id": retailer_id, "policy_version": policy_version,
                       "cutoff": cutoff, "computed_at": at}  # fmt: skip
                conn.execute(insert(table).values(**row))
            record_change(conn, retailer_id, at)

    def add_prediction_counts(
        self, *, counts: Sequence[tuple[str, date, datetime, Mapping[str, Any]]], at: datetime
    ) -> None:
        if not counts:
            return
        with self._write() as conn:
            for retailer_id in sorted({r for r, _, _, _ in counts}):
                self._scope(conn, retailer_id)
                born = living(conn, {retailer_id}).get(retailer_id)
                rows = [
                    {"retailer_id": r, "day": d, "at": at, "figures": dict(f)}
                    for r, d, first, f in counts
                    if r == retailer_id and born is not None and born <= first
                ]
                if rows:
                    conn.execute(insert(prediction_counts), rows)

    def prediction_counts(
        self, *, retailer_id: str, start: date, end: date
    ) -> Mapping[date, Sequence[Mapping[str, Any]]]:
        c = prediction_counts.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(c.day, c.figures)
                .where(c.retailer_id == retailer_id, c.day >= start, c.day <= end)
                .order_by(c.id)
            ).all()
        by_day: dict[date, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row.day, []).append(row.figures)
        return by_day

    def first_scored(self) -> Mapping[str, date]:
        log, counted = prediction_log.c, prediction_counts.c
        with self._read() as conn:
            logged = conn.execute(
                select(log.retailer_id, func.min(log.at)).group_by(log.retailer_id)
            ).all()
            days = conn.execute(
                select(counted.retailer_id, func.min(counted.day)).group_by(counted.retailer_id)
            ).all()
        first: dict[str, date] = {r[0]: utc(r[1]).date() for r in logged}
        for retailer_id, day in days:
            day = date.fromisoformat(day) if isinstance(day, str) else day
            first[retailer_id] = min(day, first.get(retailer_id, day))
        return first

    def put_daily_stats(self, *, retailer_id: str, days: Sequence[DailyStats]) -> None:
        if not days:
            return
        with self._write(retailer_id) as conn:
            conn.execute(
                delete(daily_stats).where(
                    daily_stats.c.retailer_id == retailer_id,
                    daily_stats.c.day.in_([d.day for d in days]),
                )
            )
            conn.execute(
                insert(daily_stats),
                [
                    {
                        "retailer_id": retailer_id,
                        "day": d.day,
                        "computed_at": d.computed_at,
                        "final": d.final,
                        "figures": dict(d.figures),
                    }
                    for d in days
                ],
            )

    def daily_stats(self, *, retailer_id: str, start: date, end: date) -> Sequence[DailyStats]:
        d = daily_stats.c
        with self._read(retailer_id) as conn:
            rows = conn.execute(
                select(daily_stats)
                .where(d.retailer_id == retailer_id, d.day >= start, d.day <= end)
                .order_by(d.day)
            ).all()
        return [
            DailyStats(
                retailer_id=r.retailer_id,
                day=r.day,
                computed_at=r.computed_at,
                final=bool(r.final),
                figures=r.figures,
            )
            for r in rows
        ]


def _sqlite_time(moment: datetime) -> str:
    """What SQLAlchemy's SQLite DateTime stores for a UTC time (``UTCDateTime`` stores UTC):
    ``%Y-%m-%d %H:%M:%S.%f``, written by ``isoformat`` in half ``strftime``'s time (and
    without its offset, cut off, rather than by a naive copy of the time: a third less)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:26]
