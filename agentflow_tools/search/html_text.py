"""The readable text of an HTML page.

trafilatura finds the main content and drops navigation, ads and footers. It gives up on some
pages (content only in a footer, unusual markup); then a plain walk over the HTML keeps every
visible text node, which is noisier but better than answering from nothing.
"""

from __future__ import annotations

from html.parser import HTMLParser

from agentflow_tools.search.extras import need

#: Elements whose text is never shown to a reader.
_INVISIBLE = frozenset({"script", "style", "noscript", "template", "svg"})
#: Elements that start a new line of text.
_BLOCKS = frozenset(
    {
        "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header",
        "footer", "blockquote", "pre", "table", "ul", "ol", "dl", "dt", "dd", "hr", "main", "aside", "nav",
    }
)  # fmt: skip


def main_text(html: str, url: str | None = None) -> str:
    """The page's main text, paragraphs on their own lines; empty if the page has no text."""
    text = need("trafilatura").extract(html, url=url, include_comments=False, include_tables=True)
    if text and text.strip():
        return str(text)
    return html_to_text(html)


def html_to_text(html: str) -> str:
    """Every visible text node, one line per block element: the fallback when extraction fails."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
