"""docs/check_site.py: each check fails on what the site showed before
issue 26 (snippets of its HTML) and passes on the fixed markup. The checks
run on the whole built site in `.ci/run`'s docs step."""

from __future__ import annotations

from pathlib import Path

import pytest
from integration.scripts import ROOT, load_script

check_site = load_script(ROOT / "docs" / "check_site.py", "check_site")


def _page(body: str) -> str:
    return (
        f"<html><body><nav><h2 id='nav'>menu</h2></nav><article>{body}"
        "</article></body></html>"
    )


def test_long_code_lines_counts_characters_inside_pre_only():
    ok = "x" * check_site.MAX_CODE_LINE
    wide = "y" * (check_site.MAX_CODE_LINE + 1)
    content = check_site.parse(
        _page(
            f"<p>{wide}</p><pre><code><span>{ok}</span>\n{wide[:10]}</code></pre>"
            f"<pre><code>a = 1\n<span class='c'>{wide}</span></code></pre>"
        )
    )
    assert check_site.long_code_lines(content) == [wide]


def test_long_code_lines_reads_entities_as_one_character():
    line = "&lt;" * check_site.MAX_CODE_LINE
    content = check_site.parse(_page(f"<pre><code>{line}</code></pre>"))
    assert check_site.long_code_lines(content) == []


@pytest.mark.parametrize(
    "html,found",
    [
        # The site before: `(*batch_shape, *S, 4C)` and `(D, G*H)`.
        ("<p>frames (<em>batch_shape, </em>S, 4C) each</p>", True),
        ("<p>kernel (D, G<em>H), fan_in = D and fan_out = G</em>H)</p>", True),
        (
            "<p>kernel <code>(D, G*H)</code> and <em>emphasis</em> in prose</p>",
            False,
        ),
        ("<p>a <em>word</em>, and (<code>*S</code>)</p>", False),
    ],
)
def test_italics_inside_words(html, found):
    assert bool(check_site.italics_inside_words(_page(html))) is found


def test_typeless_entries_finds_the_lone_dash():
    before = (
        '<li class="doc-section-item field-body">\n  \u2013\n  '
        '<div class="doc-md-description"><p>(new_carry, y)</p></div></li>'
    )
    after = (
        '<li class="doc-section-item field-body"><code>tuple</code> '
        "\u2013 <div><p>(new_carry, y)</p></div></li>"
    )
    assert check_site.typeless_entries(before) == ["\u2013 (new_carry, y)"]
    assert check_site.typeless_entries(after) == []


def test_parse_counts_the_article_only():
    content = check_site.parse(
        _page(
            "<h2 id='a'>A</h2><p>text</p><table><tr><td>1</td></tr></table>"
            "<h3 id='jaxrnn.LSTMCell.init'>init</h3>"
        )
    )
    assert content.headings == 2
    assert content.heading_ids == ["a", "jaxrnn.LSTMCell.init"]
    assert content.first_table_at == len("A") + len("text")


def _site(tmp_path: Path, pages: dict[str, str], sitemap: bool = True) -> Path:
    for name, body in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_page(body), encoding="utf-8")
    if sitemap:
        (tmp_path / "sitemap.xml").write_text(
            "<urlset><url><loc>https://example.org/</loc></url></urlset>"
        )
    return tmp_path


_PROTOCOL = "<h4 id='jaxrnn.LSTMCell.project_inputs'>project_inputs</h4>"
_PERFORMANCE = (
    "<p>short</p><table><tr><td>1.0</td></tr></table>"
    + "<p>"
    + "words " * 100
    + "</p>"
)


def test_check_site_passes_a_site_that_reads_right(tmp_path):
    site = _site(
        tmp_path,
        {
            "index.html": "<pre><code>import jaxrnn</code></pre>",
            "writing-cells/index.html": _PROTOCOL,
            "performance/index.html": _PERFORMANCE,
            "api/core/index.html": "<h3 id='jaxrnn.LSTMCell.init'>init</h3>",
        },
    )
    assert check_site.check_site(site) == []


def test_check_site_reports_each_problem_of_the_old_site(tmp_path):
    site = _site(
        tmp_path,
        {
            "index.html": "<pre><code>" + "z" * 84 + "</code></pre>",
            "writing-cells/index.html": _PROTOCOL,
            # The performance page opened with prose, its table far down.
            "performance/index.html": "<p>"
            + "log " * 1000
            + "</p><table></table>",
            # The core page showed every cell's protocol methods, 176 headings.
            "api/core/index.html": _PROTOCOL.replace("LSTMCell", "GRUCell")
            + "<h3 id='x'>x</h3>" * 176,
        },
        sitemap=False,
    )
    problems = "\n".join(check_site.check_site(site))
    assert "index.html: code line of 84 characters" in problems
    assert "performance/index.html: the first table comes at 100%" in problems
    assert (
        "api/core/index.html: the cell protocol's methods belong" in problems
    )
    assert "jaxrnn.GRUCell.project_inputs" in problems
    assert "177 headings" in problems
    assert "sitemap.xml: no page listed" in problems


def test_check_site_needs_the_protocol_page(tmp_path):
    site = _site(tmp_path, {"index.html": "<p>home</p>"})
    assert check_site.check_site(site) == [
        "writing-cells/index.html: missing (the cell protocol's page)"
    ]


def test_main_exit_codes(tmp_path, capsys):
    good = _site(
        tmp_path / "good",
        {
            "writing-cells/index.html": _PROTOCOL,
            "performance/index.html": _PERFORMANCE,
        },
    )
    assert check_site.main([str(good)]) == 0
    bad = _site(tmp_path / "bad", {"index.html": "<p>home</p>"})
    assert check_site.main([str(bad)]) == 1
    assert check_site.main([]) == 2
    assert "1 problem(s)" in capsys.readouterr().out
