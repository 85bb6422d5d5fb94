"""Pieces the search tools share; none of them is a tool itself.

- ``http``: one JSON request with a timeout, every failure turned into a one-line ``ToolError``.
- ``safe_fetch``: download a public web page without letting a URL reach private networks.
- ``html_text``: the main text of an HTML page.
- ``passages``: cut text into passages of a bounded size.
- ``bm25`` and ``embeddings``: order passages by relevance to a query; ``rank`` picks one.
- ``local_index``: a BM25 index over a JSONL corpus, built once and memory-mapped afterwards.
- ``answer_spans``: the short spans of a passage that may answer a question.
- ``names``: the names a question asks about, which a search tool must hold to claim it.
- ``extras``: import an optional dependency or say which extra installs it.

Heavy libraries (bm25s, trafilatura, sentence-transformers) are imported inside the functions
that use them, so importing a tool module to read its spec stays cheap.
"""
