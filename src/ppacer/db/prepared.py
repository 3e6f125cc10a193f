"""Statements of a task hop's path, compiled once per dialect and run through the driver.

SQLAlchemy's per-execution work (an execution context, parameter processing,
a result object) costs about as much as SQLite's own work for the one-row
statements a task's hop runs: measured here (2,000 status updates in one
SQLite transaction, medians of 5), 11.5 µs an update through
:meth:`Connection.execute` against 5.3 µs through
:meth:`Connection.exec_driver_sql`; ``benchmarks/micro.py --db`` shows the
same on PostgreSQL (a hop's transaction 542 µs against 400 µs). A
:class:`Prepared` statement is compiled for the connection's dialect on first
use and then only run: the same SQL text SQLAlchemy would send, the same
transaction, its events still fired. For statements whose parameters are plain
strings and integers (no type processing is applied).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Table, bindparam, insert
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared"]


class Prepared:
    """``statement`` (with bind parameters), run by parameter dicts through the driver;
    or, made by :meth:`insert`, an INSERT run by tuples of its columns' values."""

    __slots__ = ("_arrangers", "_compiled", "names", "statement")

    def __init__(self, statement: ClauseElement, names: tuple[str, ...] = ()) -> None:
        self.statement = statement
        #: The bind names a row of :meth:`executemany_tuples` gives values of, in order.
        self.names = names
        # Per dialect name: the SQL text, and the bind names in order (None: by name).
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        # Per dialect name: how to make a tuple row what the driver takes (None: as it is).
        self._arrangers: dict[str, Callable[[Any], Any] | None] = {}

    @classmethod
    def insert(cls, table: Table, *columns: str) -> Prepared:
        """An INSERT into ``table`` of ``columns``, each bound by its own name; rows are
        tuples of their values in that order. Give them in the table's order: SQLAlchemy
        writes the columns so, and rows then go to a positional driver as they are."""
        statement = insert(table).values({column: bindparam(column) for column in columns})
        return cls(statement, columns)

    def _sql(self, conn: Connection) -> tuple[str, tuple[str, ...] | None]:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[dialect.name] = (compiled.string, order)
        return found

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        """Run it once; the result tells ``rowcount``."""
        sql, order = self._sql(conn)
        args: Any = tuple(params[name] for name in order) if order is not None else params
        return conn.exec_driver_sql(sql, args)

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it for each of ``rows`` (nothing for none)."""
        if not rows:
            return
        sql, order = self._sql(conn)
        if order is not None:
            conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in rows])
        else:
            conn.exec_driver_sql(sql, list(rows))

    def executemany_tuples(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run it for each of ``rows``, tuples of the values of :attr:`names` in that order.

        For thousands of rows (the runs due at one instant): when :attr:`names` is the
        statement's positional order the tuples go to the driver as they are, with
        no dict built or read per row.
        """
        if not rows:
            return
        sql, order = self._sql(conn)
        dialect = conn.dialect.name
        if dialect not in self._arrangers:
            names = self.names
            if order is None:
                self._arrangers[dialect] = _by_name(names)
            elif order == names:
                self._arrangers[dialect] = None  # as they are
            else:
                self._arrangers[dialect] = _by_position(tuple(names.index(n) for n in order))
        arrange = self._arrangers[dialect]
        conn.exec_driver_sql(sql, list(rows) if arrange is None else [arrange(r) for r in rows])


def _by_position(indices: tuple[int, ...]) -> Callable[[Any], Any]:
    return lambda row: tuple(row[i] for i in indices)


def _by_name(names: tuple[str, ...]) -> Callable[[Any], Any]:
    return lambda row: dict(zip(names, row, strict=True))
