"""Checks the built documentation site as a reader meets it.

Run after ``mkdocs build``: ``python docs/check_site.py SITE_DIR``. Each
check reads the HTML MkDocs wrote, so it catches what the Markdown sources
cannot show: a shape whose ``*`` became italics, a code line wider than the
content column, an API page too long to use. Prints every problem and exits
with 1 if there is one; `tests/integration/test_docs_site.py` tests the
checks.
"""

from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

# Characters of Roboto Mono that fit the content column at 1280 px: the
# code block is 656 px wide inside its padding at 8.18 px per character
# (measured in headless Chromium, mkdocs-material 9.8).
MAX_CODE_LINE = 79

# An API page's reading length, in characters of visible text and in
# headings. The core page had 72,000 and 176 (about 50,000 px at 1280 px)
# before its protocol methods moved to writing-cells.md; 45,000 characters
# render about 34,000 px.
MAX_API_TEXT = 45_000
MAX_API_HEADINGS = 90

# The performance page opens with its results: its first table comes
# within this fraction of its text.
FIRST_TABLE_WITHIN = 0.15

# The page that documents the cell protocol's optional methods; no other
# page shows them.
PROTOCOL_PAGE = "writing-cells/index.html"


class _Content(HTMLParser):
    """The text, headings and code blocks inside the page's article."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # > 0 inside <article>
        self.text: list[str] = []
        self.heading_ids: list[str] = []
        self.headings = 0
        self.code_blocks: list[str] = []
        self.first_table_at: int | None = None
        self._pre: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "article":
            self.depth += 1
        if not self.depth:
            return
        if tag in ("h2", "h3", "h4", "h5", "h6"):
            self.headings += 1
            ident = dict(attrs).get("id")
            if ident:
                self.heading_ids.append(ident)
        elif tag == "pre":
            self._pre = []
        elif tag == "table" and self.first_table_at is None:
            self.first_table_at = sum(map(len, self.text))

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self.depth -= 1
        elif tag == "pre" and self._pre is not None:
            self.code_blocks.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data: str) -> None:
        if not self.depth:
            return
        if self._pre is not None:
            self._pre.append(data)
        self.text.append(data)


def parse(page_html: str) -> _Content:
    content = _Content()
    content.feed(page_html)
    return content


def long_code_lines(content: _Content) -> list[str]:
    """Code lines that run past the content column."""
    return [
        line
        for block in content.code_blocks
        for line in block.splitlines()
        if len(line) > MAX_CODE_LINE
    ]


# Markdown emphasis never starts or ends inside a word or right after an
# opening parenthesis: a stray `*` in a shape such as (D, G*H) does.
_INTRAWORD_EM = re.compile(r"[\w(]<em>|</em>\w")


def italics_inside_words(page_html: str) -> list[str]:
    """Emphasis that a ``*`` in a shape or product started: the text
    around each, tags removed."""
    found = []
    for match in _INTRAWORD_EM.finditer(page_html):
        around = page_html[max(0, match.start() - 40) : match.end() + 40]
        found.append(html.unescape(re.sub(r"<[^>]+>", "", around)).strip())
    return found


_SECTION_ITEM = re.compile(
    r'<li class="doc-section-item field-body">(.*?)</li>', re.S
)


def typeless_entries(page_html: str) -> list[str]:
    """Docstring section entries (Returns, Raises, ...) that show a lone
    dash where their type should be."""
    found = []
    for item in _SECTION_ITEM.findall(page_html):
        text = html.unescape(re.sub(r"<[^>]+>", "", item)).strip()
        if text.startswith("\u2013"):
            found.append(" ".join(text.split())[:80])
    return found


def _member_name(ident: str) -> str | None:
    """``jaxrnn.LSTMCell.project_inputs`` -> ``project_inputs``; None for an
    id that is not a class member's."""
    parts = ident.split(".")
    if parts[:2] == ["jaxrnn", "protocols"]:
        return None  # the Protocol classes restate the public methods too
    if len(parts) >= 3 and parts[0] == "jaxrnn" and parts[-2][:1].isupper():
        return parts[-1]
    return None


def check_site(site: Path) -> list[str]:
    """Every problem found in the site built at `site`, one line each."""
    problems = []
    pages = {
        str(p.relative_to(site)): p.read_text(encoding="utf-8")
        for p in sorted(site.rglob("index.html"))
    }
    if PROTOCOL_PAGE not in pages:
        return [f"{PROTOCOL_PAGE}: missing (the cell protocol's page)"]
    protocol = {
        name
        for ident in parse(pages[PROTOCOL_PAGE]).heading_ids
        if (name := _member_name(ident))
    }
    if not protocol:
        problems.append(f"{PROTOCOL_PAGE}: documents no protocol method")
    for name, page_html in pages.items():
        content = parse(page_html)
        for line in long_code_lines(content):
            problems.append(
                f"{name}: code line of {len(line)} characters "
                f"(at most {MAX_CODE_LINE} fit): {line[:60]}..."
            )
        for text in italics_inside_words(page_html):
            problems.append(
                f"{name}: italics inside a word or shape, "
                f"a `*` lost to Markdown: {text!r}"
            )
        for text in typeless_entries(page_html):
            problems.append(
                f"{name}: a docstring entry without its type: {text!r}"
            )
        if name.startswith("api/"):
            size = len(" ".join("".join(content.text).split()))
            if size > MAX_API_TEXT or content.headings > MAX_API_HEADINGS:
                problems.append(
                    f"{name}: {size} characters and {content.headings} "
                    f"headings; an API page holds at most {MAX_API_TEXT} "
                    f"and {MAX_API_HEADINGS}"
                )
        if name != PROTOCOL_PAGE:
            shown = sorted(
                {
                    ident
                    for ident in content.heading_ids
                    if _member_name(ident) in protocol
                }
            )
            if shown:
                problems.append(
                    f"{name}: the cell protocol's methods belong "
                    f"on {PROTOCOL_PAGE}, found {shown[:4]} and "
                    f"{max(0, len(shown) - 4)} more"
                )
    performance = pages.get("performance/index.html")
    if performance is None:
        problems.append("performance/index.html: missing")
    else:
        content = parse(performance)
        size = sum(map(len, content.text))
        at = content.first_table_at
        if at is None or at > FIRST_TABLE_WITHIN * size:
            where = "none" if at is None else f"at {at / size:.0%} of its text"
            problems.append(
                f"performance/index.html: the first table comes "
                f"{where}; it must open the page (within "
                f"{FIRST_TABLE_WITHIN:.0%})"
            )
    sitemap = site / "sitemap.xml"
    if not sitemap.exists() or "<loc>" not in sitemap.read_text():
        problems.append("sitemap.xml: no page listed (set site_url)")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python docs/check_site.py SITE_DIR", file=sys.stderr)
        return 2
    problems = check_site(Path(argv[0]))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in the built site {argv[0]}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
