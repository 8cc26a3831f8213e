"""Text helpers: feed HTML to plain text, cutting at a word boundary, Telegram's length."""

from __future__ import annotations

from bot.text import fold_whitespace, html_to_text, shorten, telegram_length


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
