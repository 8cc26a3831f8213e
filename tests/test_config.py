"""The config file: the shipped one works, every bad key is named in one clear line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.config import ConfigError, config_path_from, load_config, parse_config

REPO = Path(__file__).parent.parent


def test_shipped_config_is_the_embassy_bot() -> None:
    config = load_config(REPO / "config" / "bot.toml", env={})
    assert config.timezone.key == "Europe/London"
    assert [z.key for z in config.clocks] == ["Europe/Moscow", "Europe/London"]
    assert [c.since for c in config.counters] == [date(2018, 3, 4), date(2018, 3, 12)]
    assert "Salisbury incident" in config.counters[0].text
    assert Path(config.feeds[0].url).is_file()  # the bundled sample: the demo needs no network
    assert config.state_dir == (REPO / "state").resolve()


def test_example_config_documents_a_valid_config() -> None:
    config = load_config(REPO / "config" / "example.toml", env={})
    assert config.feeds and config.counters


def test_relative_paths_are_read_from_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "bot.toml").write_text(
        'bot.state = "data"\n[[feeds]]\nname = "a"\nurl = "feed.xml"\n', encoding="utf-8"
    )
    (folder / "feed.xml").write_bytes(b"<rss/>")
    config = load_config(folder / "bot.toml", env={})
    assert config.state_dir == folder / "data"
    assert config.feeds[0].url == str(folder / "feed.xml")


def test_environment_overrides(tmp_path: Path) -> None:
    raw = {"feeds": [{"name": "a", "url": "https://example.org/rss"}]}
    env = {"STATEMENT_BOT_STATE": str(tmp_path / "s"), "TELEGRAM_API_BASE_URL": "http://h:1/bot"}
    config = parse_config(raw, env=env)
    assert config.state_dir == tmp_path / "s"
    assert config.api_base_url == "http://h:1/bot"


def test_config_path_precedence() -> None:
    assert config_path_from("x.toml", {"STATEMENT_BOT_CONFIG": "y.toml"}) == Path("x.toml")
    assert config_path_from(None, {"STATEMENT_BOT_CONFIG": "y.toml"}) == Path("y.toml")
    assert config_path_from(None, {}) == Path("config/bot.toml")


def test_defaults_for_a_feed() -> None:
    config = parse_config({"feeds": [{"name": "a", "url": "https://example.org/rss"}]}, env={})
    feed = config.feeds[0]
    assert (feed.interval, feed.announce_first, feed.flood_limit) == (300, 0, 10)
    assert 0 < feed.jitter <= 30


def test_every_problem_is_reported_with_its_key() -> None:
    raw = {
        "bot": {"timezone": "Mars/Olympus", "clocks": "Europe/London", "colour": "red"},
        "feeds": [
            {"name": "a", "url": "ftp://example.org/rss", "interval": 0},
            {"name": "a", "url": "https://example.org/rss", "announce_first": -1},
        ],
        "counters": [{"since": "yesterday", "text": "x"}, {"since": "2018-03-04", "text": "no"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env={})
    problems = "\n".join(caught.value.problems)
    for expected in (
        "bot.timezone: unknown time zone 'Mars/Olympus'",
        "bot.clocks: must be a list",
        "bot.colour: unknown key",
        "feeds[0].url: scheme 'ftp' is not supported",
        "feeds[0].interval: must be a number from 1",
        "feeds[1].name: 'a' is used by another feed",
        "feeds[1].announce_first: must be a whole number from 0",
        "counters[0].since: must be a date",
        "counters[1].text: must be a string containing {days}",
    ):
        assert expected in problems
    assert len(caught.value.problems) == 9


def test_missing_feeds_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        parse_config({}, env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[bot\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml", env={})


def test_interval_down_to_one_second_is_allowed() -> None:
    raw = {"feeds": [{"name": "a", "url": "https://example.org/rss", "interval": 1}]}
    assert parse_config(raw, env={}).feeds[0].interval == 1


def test_counter_template_with_stray_braces_is_refused() -> None:
    raw = {
        "feeds": [{"name": "a", "url": "https://example.org/rss"}],
        "counters": [{"since": "2018-03-04", "text": "{days} days {oops}"}],
    }
    with pytest.raises(ConfigError):
        parse_config(raw, env={})


def _problems(raw: dict, env: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env=env or {})
    return "\n".join(caught.value.problems)


def test_a_local_feed_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    problems = _problems({"feeds": [{"name": "a", "url": str(missing)}]})
    assert f"feeds[0].url: no such file: {missing}" in problems
    problems = _problems({"feeds": [{"name": "a", "url": missing.as_uri()}]})
    assert "feeds[0].url: no such file" in problems


def test_a_local_feed_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    problems = _problems({"feeds": [{"name": "a", "url": str(tmp_path)}]})
    assert f"feeds[0].url: not a regular file: {tmp_path}" in problems


def test_a_broken_api_base_url_is_one_line_not_a_traceback() -> None:
    raw = {"feeds": [{"name": "a", "url": "https://example.org/rss"}]}
    problems = _problems(raw, {"TELEGRAM_API_BASE_URL": "http://[::1/bot"})
    assert problems == "TELEGRAM_API_BASE_URL: must be an http(s) URL such as http://host:8081/bot"
    problems = _problems({**raw, "bot": {"api_base_url": "http://h:port/bot"}})
    assert problems.startswith("bot.api_base_url: must be an http(s) URL")


def test_a_broken_feed_url_is_named() -> None:
    problems = _problems({"feeds": [{"name": "a", "url": "http://[::1/rss"}]})
    assert problems.startswith("feeds[0].url: 'http://[::1/rss' is not a valid URL")


def test_feed_headers_are_kept_and_never_echoed() -> None:
    raw = {
        "feeds": [
            {
                "name": "a",
                "url": "https://example.org/rss",
                "headers": {"Accept-Language": "en", "Cookie": "session=s3cret"},
            }
        ]
    }
    feed = parse_config(raw, env={}).feeds[0]
    assert dict(feed.headers) == {"Accept-Language": "en", "Cookie": "session=s3cret"}
    assert "s3cret" not in repr(feed)
    raw["feeds"][0]["headers"] = {"Bad Name": "x", "Cookie": "s3cret\r\nX-Evil: 1"}
    problems = _problems(raw)
    assert "feeds[0].headers: 'Bad Name' is not a valid header name" in problems
    assert "feeds[0].headers.Cookie: must be a string of printable ASCII on one line" in problems
    assert "s3cret" not in problems

    raw["feeds"][0]["headers"] = {"Host": "evil.example", "Cookie": "s3cret-é"}
    problems = _problems(raw)
    assert "feeds[0].headers.Host: set by the bot itself, not per feed" in problems
    assert "feeds[0].headers.Cookie: must be a string of printable ASCII" in problems
    assert "s3cret" not in problems


def test_a_page_source_is_read_from_its_table() -> None:
    page = {
        "item": "div.news-item",
        "title": "a.title",
        "link": "a.title::attr(href)",
        "date": "span.date",
        "date_formats": ["%d.%m.%Y", "%d %B %Y"],
        "lead": "div.lead",
        "article": "div.text p",
    }
    feed = parse_config(
        {"feeds": [{"name": "press", "url": "https://example.org/", "page": page}]}, env={}
    ).feeds[0]
    assert feed.page is not None
    assert (feed.page.item, feed.page.link, feed.page.article) == (
        "div.news-item",
        "a.title::attr(href)",
        "div.text p",
    )
    assert feed.page.date_formats == ("%d.%m.%Y", "%d %B %Y")


def test_every_page_problem_is_one_line_naming_its_key() -> None:
    page = {"title": "a[", "date_formats": ["dd.mm.yyyy", "%d.%m.%Y"], "colour": "red"}
    problems = _problems({"feeds": [{"name": "p", "url": "https://example.org/", "page": page}]})
    lines = problems.splitlines()
    assert "feeds[0].page.item: required: the CSS selector of one statement" in lines
    assert any(line.startswith("feeds[0].page.title: bad CSS selector 'a['") for line in lines)
    assert any(line.startswith("feeds[0].page.date_formats[0]: 'dd.mm.yyyy': ") for line in lines)
    assert any(line.startswith("feeds[0].page.colour: unknown key") for line in lines)
    assert len(lines) == 4
    problems = _problems({"feeds": [{"name": "p", "url": "https://example.org/", "page": "x"}]})
    assert problems == "feeds[0].page: must be a table ([feeds.page])"


def _raw(**extra) -> dict:
    counter = {"since": "2018-03-04", "text": "{days} days", **extra.pop("counter", {})}
    feed = {"name": "press", "url": "https://e.org/rss", **extra.pop("feed", {})}
    return {"bot": extra.pop("bot", {}), "feeds": [feed], "counters": [counter]}


def test_shipped_configs_speak_russian_too() -> None:
    for name in ("bot.toml", "embassy.toml"):
        config = load_config(REPO / "config" / name, env={})
        assert config.language == "en"
        salisbury = dict(config.counters[0].languages)["ru"]
        assert dict(salisbury)["few"].startswith("{days} дня прошло со дня инцидента в Солсбери")  # noqa: RUF001
        glushkov = dict(dict(config.counters[1].languages)["ru"])
        assert "гибели Николая Глушкова на британской земле" in glushkov["many"]
        assert all(f.title("ru") != f.name for f in config.feeds)


def test_counter_forms_per_language_and_default_language() -> None:
    ru = {"one": "{days} день", "few": "{days} дня", "many": "{days} дней"}
    config = parse_config(
        _raw(bot={"language": "ru"}, counter={"ru": ru, "en": "{days} d"}), env={}
    )
    assert config.language == "ru"
    counter = config.counters[0]
    assert dict(counter.languages)["ru"] == tuple(ru.items())
    assert counter.sentence(1332, "ru") == "{days} дня"
    assert counter.sentence(1, "en") == "{days} d"  # a plain string: one sentence for all counts


def test_bad_language_keys_are_named() -> None:
    raw = _raw(
        bot={"language": "de"},
        counter={"ru": {"one": "{days} день", "few": "{days} дня"}, "de": "{days} Tage"},
        feed={"title": {"fr": "Presse", "ru": ""}},
    )
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env={})
    problems = "\n".join(err.value.problems)
    assert "bot.language: must be one of en, ru, got 'de'" in problems
    assert "counters[0].ru: needs a sentence for many (or one for other)" in problems
    assert "counters[0].de: unknown key" in problems
    assert "feeds[0].title.fr: not a language of the bot (en, ru)" in problems
    assert "feeds[0].title.ru: must be a non-empty string" in problems


def test_bad_plural_forms_are_named() -> None:
    raw = _raw(counter={"ru": {"one": "день", "several": "{days}", "other": "{days} {x}"}})
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env={})
    problems = "\n".join(err.value.problems)
    assert "counters[0].ru.one: must be a string containing {days}" in problems
    assert "counters[0].ru.several: not a plural category" in problems
    assert "counters[0].ru.other: only {days} may stand in braces" in problems


def test_feed_title_defaults_to_the_name() -> None:
    config = parse_config(_raw(), env={})
    assert config.feeds[0].title("ru") == "press"
    config = parse_config(_raw(feed={"title": "Press releases"}), env={})
    assert config.feeds[0].title("ru") == "Press releases"
    config = parse_config(_raw(feed={"title": {"en": "Press", "ru": "Пресса"}}), env={})
    assert (config.feeds[0].title("en"), config.feeds[0].title("ru")) == ("Press", "Пресса")
