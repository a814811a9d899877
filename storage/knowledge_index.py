"""A small full-text knowledge base: Markdown/text files in SQLite FTS5.

Stdlib sqlite3 only, so the research agents work offline with no service to
run. sqlite3 is blocking, so every call runs in a thread behind one lock.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from core.knowledge import Passage

log = logging.getLogger(__name__)

#: the sample knowledge base that ships with the package
DEFAULT_KNOWLEDGE_DIR = Path(__file__).with_name("knowledge")

_SUFFIXES = (".md", ".txt")
_MAX_QUERY_TERMS = 16
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")

_STOPWORDS_TEXT = """
    a about above after again all also am an and any are as at be been being
    before below between both but by can could did do does doing down during
    each few for from further had has have having he her here hers him his how
    i if in into is it its itself just me more most my no nor not now of off on
    once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why
    will with would you your yours
    near please find tell show give know want need look research info information
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True)
class _Chunk:
    source: str
    title: str
    text: str


def _plain(line: str) -> str:
    """Drop the Markdown markup that would leak into plain-text answers."""
    line = _LINK.sub(r"\1", line)
    return line.replace("**", "").replace("__", "").replace("`", "").strip()


def split_passages(source: str, text: str) -> list[_Chunk]:
    """One passage per paragraph or list item, titled by document and section.

    Small passages keep bm25 focused (a query about one product finds that
    product's bullet) and extractive answers short. Soft-wrapped lines are
    joined with spaces.
    """
    doc_title = Path(source).stem.replace("-", " ").replace("_", " ").title()
    section = ""
    chunks: list[_Chunk] = []
    para: list[str] = []

    def flush() -> None:
        body = " ".join(line for line in para if line)
        para.clear()
        if body:
            title = f"{doc_title} — {section}" if section else doc_title
            chunks.append(_Chunk(source, title, body))

    for raw in text.splitlines():
        heading = _HEADING.match(raw.strip())
        if heading:
            flush()
            name = _plain(heading.group(2))
            if len(heading.group(1)) == 1:
                doc_title, section = name or doc_title, ""
            else:
                section = name
        elif not raw.strip():
            flush()
        elif _LIST_ITEM.match(raw):
            flush()
            para.append(_plain(_LIST_ITEM.sub("", raw, count=1)))
        else:
            para.append(_plain(raw))
    flush()
    return chunks


def fts_query(text: str) -> str | None:
    """Turn arbitrary user text into a safe FTS5 MATCH expression.

    Every term is a double-quoted phrase, so FTS5 syntax in the input (quotes,
    parentheses, NEAR, AND/OR/NOT, `*`, column filters) is just words. Terms
    are OR-ed so bm25 rewards passages matching more of them. None when no
    meaningful word is left.
    """
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if not word or word in STOPWORDS or word in terms:
            continue
        terms.append(word)
        if len(terms) == _MAX_QUERY_TERMS:
            break
    if not terms:
        return None
    return " OR ".join(f'"{t}"*' if len(t) >= 4 else f'"{t}"' for t in terms)


class KnowledgeIndex:
    """KnowledgeSearch over the *.md / *.txt files of a directory (recursive).

    The index is built lazily on the first search; `rebuild()` re-reads files.
    """

    def __init__(self, directory: str | Path | None = None, db_path: str = ":memory:") -> None:
        self.directory = Path(directory) if directory is not None else DEFAULT_KNOWLEDGE_DIR
        if not self.directory.is_dir():
            raise NotADirectoryError(f"knowledge directory not found: {self.directory}")
        self._db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._built = False
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, path: str | Path) -> KnowledgeIndex:
        return cls(path)

    async def search(self, query: str, limit: int = 5) -> list[Passage]:
        return await asyncio.to_thread(self._search, query, limit)

    async def rebuild(self) -> int:
        """Re-read the directory; returns the number of passages indexed."""
        return await asyncio.to_thread(self._rebuild)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._built = False

    # -- blocking helpers, always called with or taking self._lock ---------

    def _rebuild(self) -> int:
        with self._lock:
            return self._build_locked()

    def _build_locked(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self._db_path, check_same_thread=False)
        chunks: list[_Chunk] = []
        files = sorted(
            p for p in self.directory.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
        )
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                log.warning("skipping unreadable knowledge file %s: %s", path, exc)
                continue
            chunks.extend(split_passages(path.relative_to(self.directory).as_posix(), text))
        with self._conn:
            self._conn.execute("DROP TABLE IF EXISTS passages")
            self._conn.execute(
                "CREATE VIRTUAL TABLE passages USING fts5("
                "source UNINDEXED, title, text, tokenize = 'porter unicode61')"
            )
            self._conn.executemany(
                "INSERT INTO passages (source, title, text) VALUES (?, ?, ?)",
                [(c.source, c.title, c.text) for c in chunks],
            )
        self._built = True
        log.info("indexed %d passages from %d files in %s", len(chunks), len(files), self.directory)
        return len(chunks)

    def _search(self, query: str, limit: int) -> list[Passage]:
        match = fts_query(query)
        if match is None or limit <= 0:
            return []
        with self._lock:
            if not self._built:
                self._build_locked()
            assert self._conn is not None
            rows = self._conn.execute(
                # title matches weigh double: a heading names what a passage is about
                "SELECT source, title, text, bm25(passages, 0.0, 2.0, 1.0) AS r "
                "FROM passages WHERE passages MATCH ? ORDER BY r LIMIT ?",
                (match, limit),
            ).fetchall()
        return [Passage(source=s, title=t, text=x, score=-float(r)) for s, t, x, r in rows]
