"""The shared pieces of the search tools: passages, BM25 ranking, HTML text."""

from __future__ import annotations

from agentflow_tools.search.bm25 import rank_bm25
from agentflow_tools.search.html_text import html_to_text, main_text
from agentflow_tools.search.passages import clip, split_passages


def test_short_paragraphs_are_packed_and_long_ones_cut_between_sentences() -> None:
    long_paragraph = " ".join(f"Sentence {i} has exactly six words." for i in range(10))  # 60 words
    text = f"Title\n\nFirst short paragraph.\n{long_paragraph}\nLast line."
    passages = split_passages(text, max_words=25)

    assert passages[0] == "Title\nFirst short paragraph."
    assert all(len(p.split()) <= 25 for p in passages)
    assert passages[1] == " ".join(f"Sentence {i} has exactly six words." for i in range(4))
    assert passages[-1].endswith("Last line.")
    assert " ".join(" ".join(passages).split()) == " ".join(text.split())  # nothing lost, nothing added


def test_a_sentence_longer_than_a_passage_is_cut_into_word_slices() -> None:
    passages = split_passages(" ".join(["word"] * 25), max_words=10)
    assert [len(p.split()) for p in passages] == [10, 10, 5]


def test_wiki_section_titles_start_passages_and_empty_sections_vanish() -> None:
    text = "Intro.\n\n== History ==\nFounded long ago.\n== See also ==\n=== Notes ===\nA note.\n== References ==\n"
    assert split_passages(text, max_words=50) == ["Intro.", "History\nFounded long ago.", "Notes\nA note."]


def test_clip() -> None:
    assert clip("short", 10) == "short"
    assert clip("one two three four", 12) == "one two …"
    assert clip("abcdefghijkl", 5) == "abcde …"


def test_bm25_ranks_the_matching_passage_first() -> None:
    passages = ["Owls hunt at night.", "The heron eats fish.", "Barn owls nest in old barns and church towers."]
    assert rank_bm25("where do barn owls nest", passages, 2) == [2, 0]


def test_bm25_without_any_shared_word_keeps_document_order() -> None:
    assert rank_bm25("zeppelin", ["a b c words", "more words here", "and more"], 2) == [0, 1]
    assert rank_bm25("the", ["the of and", "a an"], 5) == [0, 1]  # nothing but stop words
    assert rank_bm25("owls", [], 3) == []


def test_html_to_text_keeps_visible_text_one_block_per_line() -> None:
    html = (
        "<html><head><title>Owls</title><style>p {color: red}</style></head><body>"
        "<script>var hidden = 1;</script><h1>Barn owl</h1><p>Hunts <b>voles</b> &amp; mice.</p>"
        "<ul><li>Nests in barns</li><li>Lays eggs</li></ul><noscript>Enable JS</noscript></body></html>"
    )
    assert html_to_text(html) == "Owls\nBarn owl\nHunts voles & mice.\nNests in barns\nLays eggs"


def test_main_text_drops_navigation_and_footer() -> None:
    paragraph = "The barn owl is the most widely distributed species of owl, found on every continent but one."
    html = (
        f"<html><body><nav><a href='/'>Home</a><a href='/shop'>Shop</a></nav>"
        f"<article><h1>Barn owl</h1><p>{paragraph}</p><p>{paragraph}</p></article>"
        f"<footer>Copyright 2024</footer></body></html>"
    )
    text = main_text(html)
    assert paragraph in text and "Shop" not in text and "Copyright" not in text
