"""The offline knowledge index: ranking, safe queries, and the shipped samples."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from storage.knowledge_index import DEFAULT_KNOWLEDGE_DIR, KnowledgeIndex, fts_query, split_passages


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeIndex:
    write(
        tmp_path,
        "laptops.md",
        "# Laptops\n\n## Travel\n\nA light laptop with long battery life suits travel.\n\n"
        "## Developers\n\nDevelopers want 32 GB of RAM.\n",
    )
    write(
        tmp_path,
        "chairs.md",
        "# Chairs\n\nA good chair adjusts seat depth and lumbar support.\n\n"
        "- Aeron: mesh back, three sizes.\n- Leap: great lumbar support.\n",
    )
    write(tmp_path, "email.txt", "Write a clear subject line. Reply within one working day.\n")
    write(tmp_path, "ignored.json", '{"laptop": "battery travel chair"}')
    return KnowledgeIndex.from_directory(tmp_path)


async def test_ranking_puts_the_matching_file_first(kb: KnowledgeIndex) -> None:
    hits = await kb.search("laptop battery for travel")
    assert hits[0].source == "laptops.md"
    assert hits[0].title == "Laptops — Travel"
    assert "battery life" in hits[0].text
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))

    chairs = await kb.search("lumbar support")
    assert {h.source for h in chairs} == {"chairs.md"}
    assert chairs[0].score > 0


async def test_txt_files_are_indexed_and_other_files_are_not(kb: KnowledgeIndex) -> None:
    assert [h.source for h in await kb.search("subject line")] == ["email.txt"]
    assert all(h.source != "ignored.json" for h in await kb.search("laptop battery chair"))


async def test_limit_is_respected(kb: KnowledgeIndex) -> None:
    assert len(await kb.search("laptop chair subject developers lumbar", limit=2)) == 2
    assert await kb.search("laptop", limit=0) == []


@pytest.mark.parametrize(
    "query",
    [
        '"laptops" OR (NEAR*',
        '"',
        "(((",
        "*",
        "NEAR(laptop chair, 2)",
        "title:laptop",
        "AND OR NOT",
        "^laptop {chair} -lumbar +travel",
        "'; DROP TABLE passages; --",
        "laptop\x00chair",
        "",
        "    ",
    ],
)
async def test_hostile_queries_do_not_raise(kb: KnowledgeIndex, query: str) -> None:
    hits = await kb.search(query)
    assert isinstance(hits, list)


async def test_query_syntax_in_user_text_is_read_as_words(kb: KnowledgeIndex) -> None:
    hits = await kb.search('"laptops" OR (NEAR*')
    assert hits and hits[0].source == "laptops.md"
    # the index survived the "DROP TABLE" text above as well
    await kb.search("'; DROP TABLE passages; --")
    assert (await kb.search("laptop"))[0].source == "laptops.md"


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('"laptops" OR (NEAR*') == '"laptops"*'
    assert fts_query("the best desk") == '"best"* OR "desk"*'
    assert fts_query("what is it?") is None
    assert fts_query('*"()') is None


async def test_empty_directory_has_no_results(tmp_path: Path) -> None:
    index = KnowledgeIndex(tmp_path)
    assert await index.search("laptop") == []
    assert await index.rebuild() == 0


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        KnowledgeIndex(tmp_path / "nope")


async def test_rebuild_picks_up_new_files(tmp_path: Path) -> None:
    index = KnowledgeIndex(tmp_path)
    assert await index.search("kettle") == []
    write(tmp_path, "kitchen.md", "# Kitchen\n\nThe kettle is descaled monthly.\n")
    assert await index.search("kettle") == []  # built lazily once, until asked
    assert await index.rebuild() == 1
    assert [h.source for h in await index.search("kettle")] == ["kitchen.md"]


async def test_concurrent_searches_share_one_connection(kb: KnowledgeIndex) -> None:
    results = await asyncio.gather(*(kb.search("lumbar support") for _ in range(20)))
    assert all(r and r[0].source == "chairs.md" for r in results)


async def test_file_database(tmp_path: Path, kb: KnowledgeIndex) -> None:
    index = KnowledgeIndex(kb.directory, db_path=str(tmp_path / "kb.sqlite"))
    assert (await index.search("lumbar"))[0].source == "chairs.md"
    index.close()
    assert (tmp_path / "kb.sqlite").exists()


def test_split_passages_by_heading_paragraph_and_list_item() -> None:
    text = (
        "# Desks\n\nIntro paragraph\nwrapped over two lines.\n\n## Picks\n\n"
        "- **Alpha**: $100\u2013$200. Sturdy\n  and quiet.\n- Beta: see [site](https://x.test).\n"
    )
    chunks = split_passages("desks.md", text)
    assert [(c.title, c.text) for c in chunks] == [
        ("Desks", "Intro paragraph wrapped over two lines."),
        ("Desks — Picks", "Alpha: $100\u2013$200. Sturdy and quiet."),
        ("Desks — Picks", "Beta: see site."),
    ]


async def test_default_directory_is_the_packaged_samples() -> None:
    index = KnowledgeIndex()
    assert index.directory == DEFAULT_KNOWLEDGE_DIR
    samples = sorted(p.name for p in DEFAULT_KNOWLEDGE_DIR.iterdir())
    assert len(samples) >= 6 and all(name.endswith(".md") for name in samples)
    expected = {
        "best laptop for travel": "laptops.md",
        "27-inch 4K monitor": "monitors.md",
        "standing desk dual motor": "standing-desks.md",
        "ergonomic office chair lumbar": "office-chairs.md",
        "email subject line": "email-etiquette.md",
        "Jira or Asana": "project-management-tools.md",
        "mechanical keyboard switches": "keyboards.md",
    }
    for query, source in expected.items():
        hits = await index.search(query)
        assert hits and hits[0].source == source, query
