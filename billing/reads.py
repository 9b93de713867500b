"""Reads of a fixed shape, for one customer, whose SQL the ORM writes once per connection.

The portal's pages make the same few reads on every request, different only in the customer's
id.  For a read of a handful of rows, building the queryset, compiling it to SQL and resolving
how its columns become model instances costs Django more than running the SQL and making the
instances (a customer's cards: some 0.4 ms of CPU against 0.1 ms).  A `CustomerRead` has the ORM
do the first part once, for a queryset built with a stand-in for the customer's id, and keeps
what the ORM's own compiler decided: the SQL, where the id goes in its parameters, which columns
are the model's fields and which are annotations, and the converters of each column.  Each call
then only puts the real id in place, runs the SQL and makes the instances as the ORM's
ModelIterable would: the same converters, `Model.from_db()`, annotations set as attributes.

`raw()` is the public way to run compiled SQL, but it works out again on every call which column
is which field and how to convert it, which costs nearly as much as compiling once saves: in a
dashboard request its five reads cost some 3.4 ms of CPU through the ORM, 1.4 ms through raw(),
0.8 ms here.  What is kept here comes from `SQLCompiler` (`select`, `klass_info`, `annotation_col_map`,
`get_converters()`), read once when the read is compiled: not public API, so
tests/portal/test_compiled_reads.py checks every read against the queryset it was compiled
from, on SQLite and on PostgreSQL, field by field.

`together()` runs several reads for one customer in one round trip on PostgreSQL (psycopg's
pipeline mode), still one SQL statement each: the dashboard's five small reads spent more time
waiting for the database server, one after the other, than working.  On PostgreSQL the server
also keeps each read's statement prepared for the connection (`_prepared_cursor`): parsing and
planning the same SQL on every page cost it more than running it.

What can be compiled once is checked when it is: the customer's id must be exactly one of the
SQL's parameters (so every read is scoped to its customer), and the queryset must make plain
instances of the model (values() and select_related() are refused, not carried over).
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.query import ModelIterable

M = TypeVar("M", bound=models.Model)

# Stands in for the customer's id while the SQL is compiled: no row has a negative id, and an
# equal value anywhere else in the SQL's parameters is refused rather than guessed about.
STAND_IN = -7_362_524_810_114_390_011


@dataclasses.dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    # Where the customer's id goes in `params`.
    customer_param: int
    # The model's own columns in a row, and the attributes they fill.
    columns: slice
    attnames: list[str]
    # annotate()d values: (attribute, column).
    annotations: list[tuple[str, int]]
    # (column, its converters, its expression): only the columns that have any.
    converters: list[tuple[int, list[Callable[..., Any]], Any]]


class CustomerRead(Generic[M]):
    """`read(customer_id=...)`: the rows of `queryset(customer_id)` as model instances, from
    SQL compiled once per database connection.

    `queryset` is called with a stand-in id when a connection first runs the read; whatever
    else it filters on is fixed for good (statuses, channels, limits), as the read's shape is.
    """

    def __init__(self, model: type[M], queryset: Callable[[int], models.QuerySet[M]]) -> None:
        self.model = model
        self.queryset = queryset
        # Per connection object, so one thread's converters (bound to its connection's
        # operations) are never used with another's connection.
        self._compiled: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, *, customer_id: int) -> list[M]:
        [instances] = together(customer_id, self)
        return instances

    def _prepared(self) -> tuple[str, BaseDatabaseWrapper, _Compiled]:
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compiled[connection] = self._compile(alias, connection)
        return alias, connection, compiled

    def _instances(
        self, alias: str, connection: BaseDatabaseWrapper, compiled: _Compiled, rows: Sequence[Sequence[Any]]
    ) -> list[M]:
        # What ModelIterable does with each row, with what it would have worked out again.
        instances = []
        for fetched in rows:
            row = list(fetched)
            for position, converters, expression in compiled.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            instance = self.model.from_db(alias, compiled.attnames, row[compiled.columns])
            for attribute, position in compiled.annotations:
                setattr(instance, attribute, row[position])
            instances.append(instance)
        return instances

    def _compile(self, alias: str, connection: BaseDatabaseWrapper) -> _Compiled:
        queryset = self.queryset(STAND_IN).using(alias)
        compiler = queryset.query.get_compiler(using=alias, connection=connection)
        sql, params = compiler.as_sql()
        klass_info = compiler.klass_info
        # values() makes no instances, select_related() more than one per row: neither is carried
        # over here, so they are refused rather than lost without a word.
        if (
            queryset._iterable_class is not ModelIterable
            or klass_info is None
            or klass_info["model"] is not self.model
            or klass_info.get("related_klass_infos")
        ):
            raise ValueError(
                f"{self.model.__name__} read: its queryset must make plain {self.model.__name__} instances"
            )
        positions = [n for n, param in enumerate(params) if type(param) is int and param == STAND_IN]
        if len(positions) != 1 or str(STAND_IN) in sql:
            raise ValueError(
                f"{self.model.__name__} read: the customer's id must be exactly one parameter of its "
                f"SQL (found {len(positions)}): {sql}"
            )
        select = compiler.select
        fields = klass_info["select_fields"]
        columns = slice(fields[0], fields[-1] + 1)
        return _Compiled(
            sql=sql,
            params=tuple(params),
            customer_param=positions[0],
            columns=columns,
            attnames=[column.target.attname for column, _sql, _alias in select[columns]],
            annotations=list(compiler.annotation_col_map.items()),
            converters=[
                (position, converters, expression)
                for position, (converters, expression) in compiler.get_converters(
                    [column for column, _sql, _alias in select]
                ).items()
            ],
        )


def together(customer_id: int, *reads: CustomerRead[Any]) -> list[list[Any]]:
    """Several reads for one customer.  On PostgreSQL they go in one round trip (psycopg's pipeline
    mode): a page's few small reads wait on the database server far more than they work, and the
    waits add up one after another otherwise.  Each is still one SQL statement, counted as such."""
    prepared = [read._prepared() for read in reads]
    connection = prepared[0][1]
    statements = []
    for _alias, _connection, compiled in prepared:
        params = list(compiled.params)
        params[compiled.customer_param] = int(customer_id)
        statements.append((compiled.sql, params))
    connection.ensure_connection()
    postgresql = connection.vendor == "postgresql"
    pipeline = connection.connection.pipeline if postgresql else None
    cursors = [_prepared_cursor(connection) if postgresql else connection.cursor() for _ in statements]
    try:
        if pipeline is not None and len(statements) > 1:
            # A statement's error surfaces when the pipeline syncs, outside cursor.execute():
            # wrapped like Django wraps any database error.
            with connection.wrap_database_errors, pipeline():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.execute(sql, params)
        else:
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        rows = [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
    return [
        read._instances(alias, conn, compiled, fetched)
        for read, (alias, conn, compiled), fetched in zip(reads, prepared, rows, strict=True)
    ]


def _prepared_cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor, wrapped as Django wraps any (so its queries are counted and logged alike), whose
    statements the PostgreSQL server keeps prepared for the session: a read's SQL never changes,
    and parsing and planning it again on every page cost the server more than running it (the
    dashboard's five reads, measured: 0.9 ms in all as plain statements, 0.35 ms prepared).

    Django binds parameters on the client and prepares nothing (its `prepare_threshold` is None,
    for the sake of transaction-mode connection poolers; the portal connects to PostgreSQL
    directly).  Only these cursors bind on the server and prepare: Django's own cursors bind on
    the client, which never prepares whatever the threshold.  psycopg forgets what it prepared on
    a rollback and after DROP or ALTER, so a migration never meets a stale statement.
    """
    raw = connection.connection
    if raw.prepare_threshold is None:
        # None turns preparing off altogether; a threshold never reached leaves it to prepare=True.
        raw.prepare_threshold = 2**31
    return connection._prepare_cursor(_preparing_cursor_class()(raw))  # type: ignore[attr-defined]


@functools.cache
def _preparing_cursor_class() -> type[Any]:
    # Imported when first used: the module needs psycopg, which SQLite runs need not have.
    from django.db.backends.postgresql import base

    server_binding: Any = base.ServerBindingCursor

    class PreparingCursor(server_binding):  # type: ignore[misc]
        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any
        ) -> Any:
            return super().execute(query, params, prepare=True, **kwargs)

        def _maybe_prepare_gen(self, pgq: Any, **kwargs: Any) -> Any:
            # psycopg notes the query it sends unprepared, not one it sends prepared; Django's
            # query log (connection.queries, the debug log) reads it from there.
            self._query = pgq
            return super()._maybe_prepare_gen(pgq, **kwargs)

    return PreparingCursor
