"""Text helpers: feed HTML to plain text, cutting at a word boundary, Telegram's length."""

from __future__ import annotations

import pytest

from bot.text import (
    feed_text,
    fold_whitespace,
    html_to_text,
    looks_like_markup,
    shorten,
    telegram_length,
)


def test_html_to_text_drops_tags_and_decodes_entities() -> None:
    assert html_to_text("<p>Q&amp;A with <b>the</b>\n\n Minister&#8217;s team</p>") == (
        "Q&A with the Minister\u2019s team"
    )


def test_html_to_text_keeps_raw_angle_brackets_as_text() -> None:
    assert (
        html_to_text("Standard: <15 days; urgent: >3 days") == "Standard: <15 days; urgent: >3 days"
    )


def test_html_to_text_skips_scripts_and_styles() -> None:
    assert html_to_text("<script>alert(1)</script><style>p{}</style>Hello") == "Hello"


def test_html_to_text_for_the_console_keeps_paragraphs_and_links() -> None:
    text = html_to_text('<b>T</b>\n\n<a href="https://x.org/1">Read</a>', show_links=True,
                        keep_lines=True)  # fmt: skip
    assert text == "T\n\nRead (https://x.org/1)"


def test_fold_whitespace() -> None:
    assert fold_whitespace("  a\u00a0 b\n\tc  ") == "a b c"


def test_shorten_cuts_at_a_word_boundary() -> None:
    text = "The two leaders discussed the state of bilateral relations"
    cut = shorten(text, 30)
    assert cut == "The two leaders discussed the…"
    assert len(cut) <= 30
    assert shorten("short", 30) == "short"


def test_shorten_cuts_a_single_long_word_where_it_must() -> None:
    cut = shorten("x" * 100, 20)
    assert len(cut) == 20 and cut.endswith("…")


def test_telegram_length_counts_utf16_units() -> None:
    assert telegram_length("abc") == 3
    assert telegram_length("Привет") == 6
    assert telegram_length("🇬🇧") == 4  # two regional indicators outside the BMP


# ---- block boundaries: words on either side never run together ------------------------


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<table><tr><td>Cell one</td><td>Cell two</td></tr></table>", "Cell one Cell two"),
        ("<table><tr><th>Head one</th><th>Head two</th></tr></table>", "Head one Head two"),
        ("<table><caption>Caption</caption><tr><td>cell</td></tr></table>", "Caption cell"),
        ("<dl><dt>Term</dt><dd>Definition</dd><dt>Next</dt></dl>", "Term Definition Next"),
        ("Above<hr>Below", "Above Below"),
        ("Above<hr/>Below", "Above Below"),
        ("<figure><img src='x.png'><figcaption>Caption</figcaption></figure>Text",
         "Caption Text"),
        ("<ul><li>One</li><li>Two</li></ul>", "One Two"),
        ("<address>Embassy</address>London", "Embassy London"),
        ("<main>Main</main><nav>Nav</nav><aside>Aside</aside>", "Main Nav Aside"),
        ("<details><summary>More</summary>Hidden text</details>", "More Hidden text"),
        ("<section>One</section><article>Two</article>", "One Two"),
        ("<fieldset><legend>Legend</legend>Body</fieldset>", "Legend Body"),
    ],
    ids=["td", "th", "caption", "dt-dd", "hr", "hr-self-closing", "figcaption", "li",
         "address", "main-nav-aside", "details-summary", "section-article", "legend"],
)  # fmt: skip
def test_html_to_text_keeps_words_apart_at_block_boundaries(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_html_to_text_keeps_a_table_row_on_one_line_for_the_console() -> None:
    markup = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
    assert html_to_text(markup, keep_lines=True) == "a b\n\nc d"  # cells of a row stay together


def test_inline_tags_do_not_add_spaces() -> None:
    assert html_to_text("<b>Bold</b><i>italic</i> and wo<span>rd</span>") == "Bolditalic and word"


# ---- HTML escaped twice ---------------------------------------------------------------

REDDIT_TWICE = (
    "&lt;!-- SC_OFF --&gt;&lt;div class=&quot;md&quot;&gt;&lt;p&gt;The embassy&amp;#39;s "
    "statement on the talks.&lt;/p&gt;&lt;/div&gt;&lt;!-- SC_ON --&gt; &amp;#32; submitted by "
    "&lt;a href=&quot;https://www.reddit.com/user/x&quot;&gt; /u/x &lt;/a&gt;"
)


def test_html_escaped_twice_reads_as_text() -> None:
    """reddit's feeds: one unescape still leaves markup; that is read as text too."""
    assert feed_text(REDDIT_TWICE, is_html=True) == (
        "The embassy's statement on the talks. submitted by /u/x"
    )


@pytest.mark.parametrize(
    "value",
    ["&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;", "<p>&lt;p&gt;Hello world&lt;/p&gt;</p>"],
)
def test_paragraph_escaped_twice_reads_as_text(value: str) -> None:
    assert feed_text(value, is_html=True) == "Hello world"


@pytest.mark.parametrize(
    "value",
    [
        "Use &lt;b&gt; for bold and &lt;/b&gt; to end it.",
        "&lt;b&gt; marks bold text, as every editor knows",
        "Standard: &lt;15 days; urgent: &gt;3 days",
        "&lt;p&gt; is the paragraph tag",
        "&lt;br&gt;",
    ],
)
def test_prose_that_mentions_tags_stays_as_written(value: str) -> None:
    """Conservative: a lead that talks about "<b>" keeps it."""
    import html

    assert feed_text(value, is_html=True) == html.unescape(value)


def test_looks_like_markup() -> None:
    assert looks_like_markup('<!-- SC_OFF --><div class="md"><p>x</p></div>')
    assert looks_like_markup("<p>Hello</p>")
    assert not looks_like_markup("<p> is a tag")
    assert not looks_like_markup("The <b> tag makes text <b>bold</b>")
    assert not looks_like_markup("<15 days> and <30 days>")


def test_plain_text_field_is_folded_not_parsed() -> None:
    assert feed_text("  A &amp; B\n<15 days  ", is_html=False) == "A &amp; B <15 days"


def test_html_to_text_survives_a_reference_with_thousands_of_digits() -> None:
    assert (
        html_to_text("a &#" + "9" * 5000 + "; b &#x" + "f" * 5000 + "; c") == "a \ufffd b \ufffd c"
    )
    assert html_to_text("&#000000065;&#x0000041;") == "AA"  # leading zeros are fine
