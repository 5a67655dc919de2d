"""Catalog read model with real full-text search.

One row per listed track in ``catalog_tracks``. Full-text search:

- **SQLite**: an external-content FTS5 table ``catalog_fts`` (porter stemming) kept in
  step by triggers on ``catalog_tracks``.
- **PostgreSQL**: a stored generated ``tsvector`` column with a GIN index for ranked
  word search, and a ``pg_trgm`` GIN index on ``search_text`` for keyword substring
  matching.

Both are plain DDL attached to the table specs (subclasses of :class:`Table`), so the
projection framework creates, drops and rebuilds them like any other table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from backline.application.catalog_search import SearchParams, search_words
from backline.domain.catalog import (
    CatalogTrack,
    format_duration,
    format_usdc,
    normalize_key,
    tempo_name,
)
from backline.projections.db import Column, Dialect, Index, ReadStore, Table, Tx
from backline.projections.framework import Batch, Projection, handles


class _CatalogTable(Table):
    def ddl(self, dialect: Dialect, *, indexes: bool = True) -> list[str]:
        # Triggers, the generated tsvector and the FTS indexes are always created (also
        # by a rebuild's index-less DDL): rows written during the rebuild need them.
        stmts = super().ddl(dialect, indexes=indexes)
        if dialect == "sqlite":
            stmts += [
                "CREATE TRIGGER IF NOT EXISTS catalog_tracks_ai AFTER INSERT ON catalog_tracks "
                "BEGIN INSERT INTO catalog_fts(rowid, search_text) "
                "VALUES (new.id, new.search_text); END",
                "CREATE TRIGGER IF NOT EXISTS catalog_tracks_ad AFTER DELETE ON catalog_tracks "
                "BEGIN INSERT INTO catalog_fts(catalog_fts, rowid, search_text) "
                "VALUES ('delete', old.id, old.search_text); END",
                "CREATE TRIGGER IF NOT EXISTS catalog_tracks_au AFTER UPDATE ON catalog_tracks "
                "BEGIN INSERT INTO catalog_fts(catalog_fts, rowid, search_text) "
                "VALUES ('delete', old.id, old.search_text); "
                "INSERT INTO catalog_fts(rowid, search_text) VALUES (new.id, new.search_text); "
                "END",
            ]
        return stmts


class _SearchTable(Table):
    """PostgreSQL's slim search table: listed tracks only, with tsvector and trigram indexes.

    Counting and ranking touch these narrow rows; the wide ``catalog_tracks`` row is read
    only for the page being returned.
    """

    def ddl(self, dialect: Dialect, *, indexes: bool = True) -> list[str]:
        stmts = super().ddl(dialect, indexes=indexes)
        if dialect == "postgres":
            stmts += [
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                "ALTER TABLE catalog_search ADD COLUMN IF NOT EXISTS search_tsv tsvector "
                "GENERATED ALWAYS AS (strip(to_tsvector('english', coalesce(search_text, '')))) "
                "STORED",
                "CREATE INDEX IF NOT EXISTS catalog_search_tsv ON catalog_search "
                "USING GIN (search_tsv)",
                "CREATE INDEX IF NOT EXISTS catalog_search_trgm ON catalog_search "
                "USING GIN (search_text gin_trgm_ops)",
            ]
        return stmts


class _FtsTable(Table):
    """SQLite's FTS5 index over ``catalog_tracks`` (nothing on PostgreSQL)."""

    def ddl(self, dialect: Dialect, *, indexes: bool = True) -> list[str]:
        if dialect != "sqlite":
            return []
        return [
            "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts USING fts5(search_text, "
            "content='catalog_tracks', content_rowid='id', tokenize='porter unicode61')"
        ]

    def drop(self) -> str:
        return "DROP TABLE IF EXISTS catalog_fts"


CATALOG_FTS = _FtsTable(
    name="catalog_fts",
    columns=(Column("search_text", "text"),),
    primary_key=("search_text",),
)

CATALOG = _CatalogTable(
    name="catalog_tracks",
    columns=(
        Column("id", "int", nullable=False),
        Column("uuid", "text", nullable=False),
        Column("external_id", "text", nullable=False),
        Column("title", "text", nullable=False),
        Column("duration_seconds", "int"),
        Column("artists", "json"),
        Column("genre", "text"),
        Column("genre_lc", "text"),
        Column("subgenre", "text"),
        Column("subgenre_lc", "text"),
        Column("additional_genres", "json"),
        Column("additional_lc", "text"),
        Column("mood", "text"),
        Column("mood_lc", "text"),
        Column("tempo", "text"),
        Column("tempo_lc", "text"),
        Column("bpm", "int"),
        Column("key", "text"),
        Column("key_lc", "text"),
        Column("instrumental", "bool"),
        Column("keywords", "text"),
        Column("description", "text"),
        Column("artwork_url", "text"),
        Column("preview_url", "text"),
        Column("formats", "json"),
        Column("license_options", "json"),
        Column("license_types", "text"),
        Column("payees", "json"),
        Column("demo", "bool"),
        Column("listed", "bool"),
        Column("search_text", "text"),
        Column("listed_at", "timestamp"),
    ),
    primary_key=("id",),
    indexes=(
        Index("catalog_tracks_uuid", ("uuid",), unique=True),
        Index("catalog_tracks_genre", ("listed", "genre_lc", "bpm")),
        Index("catalog_tracks_bpm", ("listed", "bpm")),
        Index("catalog_tracks_mood", ("listed", "mood_lc")),
        Index("catalog_tracks_subgenre", ("listed", "subgenre_lc")),
        Index("catalog_tracks_tempo", ("listed", "tempo_lc")),
        Index("catalog_tracks_key", ("listed", "key_lc")),
        Index("catalog_tracks_instrumental", ("listed", "instrumental", "bpm")),
    ),
)

CATALOG_SEARCH = _SearchTable(
    name="catalog_search",
    columns=(
        Column("id", "int", nullable=False),
        Column("genre_lc", "text"),
        Column("subgenre_lc", "text"),
        Column("additional_lc", "text"),
        Column("mood_lc", "text"),
        Column("tempo_lc", "text"),
        Column("bpm", "int"),
        Column("key_lc", "text"),
        Column("instrumental", "bool"),
        Column("license_types", "text"),
        Column("search_text", "text"),
    ),
    primary_key=("id",),
    indexes=(
        Index("catalog_search_genre", ("genre_lc", "bpm")),
        Index("catalog_search_subgenre", ("subgenre_lc",)),
        Index("catalog_search_mood", ("mood_lc",)),
        Index("catalog_search_tempo", ("tempo_lc",)),
        Index("catalog_search_key", ("key_lc",)),
        Index("catalog_search_instrumental", ("instrumental", "bpm")),
        Index("catalog_search_bpm", ("bpm",)),
    ),
)
SEARCH_COLUMNS = CATALOG_SEARCH.column_names

# The FTS index first: a rebuild drops and recreates it before the content table.
TABLES = (CATALOG_FTS, CATALOG, CATALOG_SEARCH)


def _search_text(e: Any) -> str:
    parts = [
        e.title,
        e.genre,
        e.subgenre,
        " ".join(e.additional_genres),
        e.mood,
        e.keywords or "",
        e.description,
        " ".join(a["name"] for a in e.artists),
        "instrumental" if e.instrumental else "vocals",
    ]
    return " ".join(p for p in parts if p).lower()


def _search_row(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in SEARCH_COLUMNS}


class CatalogProjection(Projection):
    name = "catalog"
    version = 2
    tables = TABLES

    @handles(CatalogTrack.Listed)
    def listed(self, batch: Batch, e: Any) -> None:
        batch.put(
            "catalog_tracks",
            {
                "id": e.track_id,
                "uuid": str(e.originator_id),
                "external_id": e.external_id,
                "title": e.title,
                "duration_seconds": e.duration_seconds,
                "artists": e.artists,
                "genre": e.genre,
                "genre_lc": e.genre.lower(),
                "subgenre": e.subgenre,
                "subgenre_lc": e.subgenre.lower(),
                "additional_genres": e.additional_genres,
                "additional_lc": "|" + "|".join(g.lower() for g in e.additional_genres) + "|",
                "mood": e.mood,
                "mood_lc": e.mood.lower(),
                "tempo": e.tempo,
                "tempo_lc": tempo_name(e.tempo),
                "bpm": e.bpm,
                "key": e.key,
                "key_lc": e.key.lower(),
                "instrumental": e.instrumental,
                "keywords": e.keywords,
                "description": e.description,
                "artwork_url": e.artwork_url,
                "preview_url": e.preview_url,
                "formats": e.formats,
                "license_options": e.license_options,
                "license_types": "|" + "|".join(sorted(e.license_options)) + "|",
                "payees": e.payees,
                "demo": e.demo,
                "listed": True,
                "search_text": _search_text(e),
                "listed_at": e.timestamp,
            },
        )
        row = batch.get("catalog_tracks", e.track_id)
        if row is not None:
            batch.put("catalog_search", _search_row(row))

    def _by_uuid(self, batch: Batch, uuid: str) -> int | None:
        row = batch.execute("SELECT id FROM catalog_tracks WHERE uuid = ?", (uuid,)).fetchone()
        return int(row[0]) if row else None

    @handles(CatalogTrack.Unlisted)
    def unlisted(self, batch: Batch, e: Any) -> None:
        track_id = self._by_uuid(batch, str(e.originator_id))
        if track_id is not None:
            batch.patch("catalog_tracks", track_id, listed=False)
            batch.delete("catalog_search", track_id)

    @handles(CatalogTrack.Relisted)
    def relisted(self, batch: Batch, e: Any) -> None:
        track_id = self._by_uuid(batch, str(e.originator_id))
        if track_id is not None:
            batch.patch("catalog_tracks", track_id, listed=True)
            row = batch.get("catalog_tracks", track_id)
            if row is not None:
                batch.put("catalog_search", _search_row(row))


# -- queries ------------------------------------------------------------------------------

# Relaxed in this order when a search finds nothing. "description" is never dropped:
# relaxing it means any of its words instead of all of them.
RELAX_ORDER = (
    "description",
    "mood",
    "key",
    "tempo",
    "additional",
    "subgenre",
    "bpm",
    "instrumental",
    "keywords",
    "genre",
)


@dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    total: int
    relaxed: list[str] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        return bool(self.relaxed)


def _fts5_quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


@dataclass
class _Sql:
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    rank: str = ""
    rank_params: list[Any] = field(default_factory=list)
    source: str = "catalog_tracks t"


class Executor(Protocol):
    """What a query plan needs to run: a transaction, or a raw connection (bench)."""

    dialect: Dialect

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


_COLS = ", ".join(f"t.{c}" for c in CATALOG.column_names)
RANK_LIMIT = 2000


class CatalogQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def get(self, track_id: int) -> dict[str, Any] | None:
        with self.read.read() as tx:
            row = tx.get_row(CATALOG, (track_id,))
        if row is None or not row["listed"]:
            return None
        return row

    def count(self) -> int:
        with self.read.read() as tx:
            row = tx.fetchone("SELECT count(*) FROM catalog_tracks WHERE listed = ?", (True,))
        return int(row[0]) if row else 0

    def build(self, dialect: Dialect, p: SearchParams, dropped: frozenset[str]) -> _Sql:
        """The WHERE clause and ranking for ``p`` minus the ``dropped`` filters."""
        sql = _Sql()
        if dialect == "sqlite":
            sql.where.append("t.listed = ?")
            sql.params.append(True)
        else:
            sql.source = "catalog_search t"  # listed tracks only

        def eq(column: str, value: str) -> None:
            sql.where.append(f"t.{column} = ?")
            sql.params.append(value)

        if p.genre and "genre" not in dropped:
            eq("genre_lc", p.genre.lower())
        if p.subgenre and "subgenre" not in dropped:
            eq("subgenre_lc", p.subgenre.lower())
        if p.additional and "additional" not in dropped:
            sql.where.append("t.additional_lc LIKE ?")
            sql.params.append(f"%|{p.additional.lower()}|%")
        if p.mood and "mood" not in dropped:
            eq("mood_lc", p.mood.lower())
        if p.tempo and "tempo" not in dropped:
            eq("tempo_lc", tempo_name(p.tempo))
        if "bpm" not in dropped:
            if p.bpm_min is not None:
                sql.where.append("t.bpm >= ?")
                sql.params.append(p.bpm_min)
            if p.bpm_max is not None:
                sql.where.append("t.bpm <= ?")
                sql.params.append(p.bpm_max)
        if p.key and "key" not in dropped:
            eq("key_lc", (normalize_key(p.key) or p.key).lower())
        if p.instrumental and "instrumental" not in dropped:
            sql.where.append("t.instrumental = ?")
            sql.params.append(p.instrumental == "Yes")
        if p.license_type:
            sql.where.append("t.license_types LIKE ?")
            sql.params.append(f"%|{p.license_type}|%")
        keywords = search_words(p.keywords) if "keywords" not in dropped else []
        description = search_words(p.description)
        if dialect == "sqlite":
            terms: list[str] = []
            if keywords:
                terms.append(" AND ".join(_fts5_quote(w) + "*" for w in keywords))
            if description:
                joiner = " OR " if "description" in dropped else " AND "
                terms.append("(" + joiner.join(_fts5_quote(w) for w in description) + ")")
            if terms:
                # FTS first: SQLite would otherwise probe the FTS index once per row.
                sql.source = "catalog_fts CROSS JOIN catalog_tracks t ON catalog_fts.rowid = t.id"
                sql.where.append("catalog_fts MATCH ?")
                sql.params.append(" AND ".join(terms))
                if description:
                    sql.rank = "bm25(catalog_fts)"
        else:
            for w in keywords:
                sql.where.append("t.search_text LIKE ?")
                sql.params.append(f"%{w}%")
            if description:
                joiner = " | " if "description" in dropped else " & "
                sql.where.append("t.search_tsv @@ to_tsquery('english', ?)")
                sql.params.append(joiner.join(description))
                if len(description) > 1:
                    sql.rank = "ts_rank(t.search_tsv, to_tsquery('english', ?)) DESC"
                    sql.rank_params.append(" | ".join(description))
        return sql

    def run(
        self, ex: Executor, p: SearchParams, dropped: frozenset[str] = frozenset()
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Count the matches and fetch one page of raw ``catalog_tracks`` rows."""
        sql = self.build(ex.dialect, p, dropped)
        base = f"FROM {sql.source} WHERE {' AND '.join(sql.where) or 'TRUE'}"
        total_row = ex.fetchone(f"SELECT count(*) {base}", sql.params)
        total = int(total_row[0]) if total_row else 0
        offset = (p.page - 1) * p.per_page
        if total == 0 or offset >= total:
            return total, []
        # Ranking a huge match set costs more than it tells: past RANK_LIMIT rows, by id.
        rank = sql.rank if sql.rank and total <= RANK_LIMIT else ""
        order = f"{rank}, t.id" if rank else "t.id"
        params = [*sql.params, *(sql.rank_params if rank else []), p.per_page, offset]
        if ex.dialect == "sqlite":
            return total, ex.fetchall(
                f"SELECT {_COLS} {base} ORDER BY {order} LIMIT ? OFFSET ?", params
            )
        ids = [
            r[0]
            for r in ex.fetchall(f"SELECT t.id {base} ORDER BY {order} LIMIT ? OFFSET ?", params)
        ]
        found = ex.fetchall(f"SELECT {_COLS} FROM catalog_tracks t WHERE t.id = ANY(?)", [ids])
        by_id = {r[0]: r for r in found}
        return total, [by_id[i] for i in ids if i in by_id]

    def _run(
        self, tx: Tx, p: SearchParams, dropped: frozenset[str]
    ) -> tuple[int, list[dict[str, Any]]]:
        total, rows = self.run(tx, p, dropped)
        return total, [tx.decode_row(CATALOG, r) for r in rows]

    def search(self, p: SearchParams) -> SearchResult:
        given = p.filters()
        with self.read.read() as tx:
            total, rows = self._run(tx, p, frozenset())
            if total:
                return SearchResult(rows, total)
            relaxable = [f for f in RELAX_ORDER if self._has(given, f)]
            dropped: list[str] = []
            for name in relaxable:
                dropped.append(name)
                total, rows = self._run(tx, p, frozenset(dropped))
                if total:
                    return SearchResult(rows, total, relaxed=list(dropped))
        return SearchResult([], 0, relaxed=list(dropped))

    def search_raw(self, ex: Executor, p: SearchParams) -> tuple[int, list[tuple[Any, ...]]]:
        """:meth:`search` over any executor, without decoding (the bench's baseline)."""
        total, rows = self.run(ex, p)
        if total:
            return total, rows
        dropped: list[str] = []
        for name in [f for f in RELAX_ORDER if self._has(p.filters(), f)]:
            dropped.append(name)
            total, rows = self.run(ex, p, frozenset(dropped))
            if total:
                break
        return total, rows

    @staticmethod
    def _has(given: dict[str, Any], name: str) -> bool:
        if name == "description":  # relaxable only when "any word" differs from "all"
            return len(search_words(given.get("description"))) > 1
        if name == "bpm":
            return "bpm_min" in given or "bpm_max" in given
        return name in given


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def track_view(
    row: dict[str, Any], public_url: str, license_type: str | None = None
) -> dict[str, Any]:
    """A read-model row → the seed's ``Track`` object."""
    options: dict[str, Any] = {}
    for kind, opt in sorted(row["license_options"].items()):
        if license_type and kind != license_type:
            continue
        options[kind] = {
            "id": kind,
            "name": opt["name"],
            "description": opt["description"],
            "price_usdc": format_usdc(int(opt["price_units"])),
            "term": opt["term"],
            "exclusivity": opt["exclusivity"],
            "territories": opt["territories"],
            "permitted_uses": list(opt["permitted_uses"]),
        }
    purchase_type = license_type or next(iter(options), "social_media")
    return {
        "id": row["id"],
        "title": row["title"],
        "duration": format_duration(int(row["duration_seconds"])),
        "artists": row["artists"],
        "genre": row["genre"],
        "subgenre": row["subgenre"],
        "additional_genres": row["additional_genres"],
        "mood": row["mood"],
        "tempo": row["tempo"],
        "bpm": row["bpm"],
        "key": row["key"],
        "instrumental": bool(row["instrumental"]),
        "keywords": row["keywords"],
        "description": row["description"],
        "artwork_url": row["artwork_url"],
        "preview_url": row["preview_url"],
        "formats_available": row["formats"],
        "license_options": options,
        "license_purchase_url": f"{public_url}/api/v1/agent/license/{row['id']}/{purchase_type}",
        "demo": bool(row["demo"]),
    }
