"""What is new, what is pushed, what is an edit: the pure decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.diff import adopt_stored_keys, decide, oldest_first, shared_guid_bases
from bot.model import Statement

T0 = datetime(2021, 10, 1, tzinfo=UTC)


def st(n: int, *, title: str | None = None, dated: bool = True) -> Statement:
    return Statement(
        key=f"k{n}",
        title=title or f"Statement {n}",
        link=f"https://example.org/{n}",
        published=T0 + timedelta(days=n) if dated else None,
        lead="",
    )


def feed(*numbers: int) -> list[Statement]:
    """A feed lists newest first."""
    return [st(n) for n in sorted(numbers, reverse=True)]


def known(*numbers: int) -> dict[str, Statement]:
    return {s.key: s for s in (st(n) for n in numbers)}


def test_first_poll_is_a_silent_baseline() -> None:
    d = decide(feed(1, 2, 3), {}, first_poll=True, announce_first=0, flood_limit=10)
    assert d.push == []
    assert [s.key for s in d.silent] == ["k1", "k2", "k3"]
    assert d.held_back == 0


def test_first_poll_can_announce_the_newest_n_oldest_first() -> None:
    d = decide(feed(1, 2, 3, 4), {}, first_poll=True, announce_first=2, flood_limit=10)
    assert [s.key for s in d.push] == ["k3", "k4"]
    assert [s.key for s in d.new] == ["k1", "k2", "k3", "k4"]


def test_new_items_are_pushed_oldest_first() -> None:
    d = decide(feed(1, 2, 3, 4), known(1, 2), first_poll=False, announce_first=0, flood_limit=10)
    assert [s.key for s in d.push] == ["k3", "k4"]
    assert d.silent == [] and d.updated == []


def test_an_edited_title_is_an_update_not_a_new_item() -> None:
    incoming = [st(2, title="Corrected"), st(1)]
    d = decide(incoming, known(1, 2), first_poll=False, announce_first=0, flood_limit=10)
    assert d.push == []
    assert [s.title for s in d.updated] == ["Corrected"]


def test_a_dropped_item_that_returns_is_not_new() -> None:
    d = decide(feed(1, 2), known(1, 2, 3), first_poll=False, announce_first=0, flood_limit=10)
    assert d.push == [] and d.silent == []


def test_flood_guard_pushes_only_the_newest_and_counts_the_rest() -> None:
    d = decide(feed(*range(1, 26)), {}, first_poll=False, announce_first=0, flood_limit=5)
    assert [s.key for s in d.push] == ["k21", "k22", "k23", "k24", "k25"]
    assert d.held_back == 20
    assert len(d.silent) == 20


def test_a_key_repeated_in_one_feed_counts_once() -> None:
    d = decide([st(2), st(2, title="dup"), st(1)], {}, first_poll=False, announce_first=0,
               flood_limit=10)  # fmt: skip
    assert [s.key for s in d.push] == ["k1", "k2"]
    assert d.push[1].title == "Statement 2"


def test_undated_items_keep_reverse_feed_order() -> None:
    items = [st(3, dated=False), st(1, dated=False), st(2, dated=False)]
    assert [s.key for s in oldest_first(items)] == ["k2", "k1", "k3"]


def test_same_date_ties_keep_feed_order() -> None:
    same = T0
    a = Statement("a", "A", "", same, "")  # listed first in the feed: the newer of the two
    b = Statement("b", "B", "", same, "")
    assert [s.key for s in oldest_first([a, b])] == ["b", "a"]


def test_without_compare_leads_a_different_lead_is_no_edit_and_a_title_edit_keeps_the_lead() -> (
    None
):
    """Leads stored from each statement's own page must not be 'corrected' by the list's."""
    stored = Statement("k", "Title", "https://x/1", None, "The article's full first paragraph")
    same_title = Statement("k", "Title", "https://x/1", None, "The list's short lead")
    retitled = Statement("k", "New title", "https://x/1", None, "The list's short lead")
    known = {"k": stored}
    kwargs = {"first_poll": False, "announce_first": 0, "flood_limit": 10, "compare_leads": False}
    assert decide([same_title], known, **kwargs).updated == []
    [edit] = decide([retitled], known, **kwargs).updated
    assert (edit.title, edit.lead) == ("New title", "The article's full first paragraph")
    assert decide([same_title], known, first_poll=False, announce_first=0, flood_limit=10).updated


def test_without_edits_allowed_stored_text_is_never_replaced() -> None:
    known = {"k": Statement("k", "Заявление", "", None, "")}
    mojibake = Statement("k", "Đ—Đ°ŃŹĐ²", "", None, "")
    new = Statement("n", "New", "", None, "")
    decision = decide(
        [new, mojibake],
        known,
        first_poll=False,
        announce_first=0,
        flood_limit=10,
        edits_allowed=False,
    )
    assert decision.updated == [] and [s.key for s in decision.push] == ["n"]


# ---- posts that share a guid, stored under the rule of their day -----------------------------


def post(key: str, n: int) -> Statement:
    return Statement(key, f"Post {n}", f"https://example.org/{n}", T0 + timedelta(days=n), "")


def test_a_shared_guid_family_stored_the_other_way_round_keeps_its_stored_keys() -> None:
    """Stored when the newest kept the guid; read now with the oldest keeping it. Without
    adopting the stored keys, post 2 would be pushed again, and post 1 taken as a correction
    of post 2 (its messages edited into another statement)."""
    stored = {"g": post("g", 2), "g#https://example.org/1": post("g#https://example.org/1", 1)}
    incoming = [post("g#https://example.org/2", 2), post("g", 1)]
    assert shared_guid_bases(incoming) == {"g"}
    adopted = adopt_stored_keys(incoming, stored)
    assert [s.key for s in adopted] == ["g", "g#https://example.org/1"]
    d = decide(adopted, stored, first_poll=False, announce_first=0, flood_limit=10)
    assert (d.push, d.updated) == ([], [])


def test_a_new_post_of_the_guid_is_new_even_when_its_key_is_a_stored_ones() -> None:
    # Post 0 is older than both stored ones (a late backfill): it comes as "g", which post 2
    # keeps; it gets a key of its own and is pushed, once.
    stored = {"g": post("g", 2), "g#https://example.org/1": post("g#https://example.org/1", 1)}
    incoming = [post("g#https://example.org/2", 2), post("g#https://example.org/1", 1),
                post("g", 0)]  # fmt: skip
    adopted = adopt_stored_keys(incoming, stored)
    assert [s.key for s in adopted][:2] == ["g", "g#https://example.org/1"]
    assert adopted[2].key.startswith("g#sha256:") and adopted[2].title == "Post 0"
    d = decide(adopted, stored, first_poll=False, announce_first=0, flood_limit=10)
    assert [s.title for s in d.push] == ["Post 0"] and d.updated == []


def test_a_corrected_title_in_a_family_is_still_its_post() -> None:
    stored = {"g": post("g", 1), "g#https://example.org/2": post("g#https://example.org/2", 2)}
    corrected = Statement("g#https://example.org/2", "Post 2, corrected", "https://example.org/2",
                          T0 + timedelta(days=2), "")  # fmt: skip
    adopted = adopt_stored_keys([corrected, post("g", 1)], stored)
    d = decide(adopted, stored, first_poll=False, announce_first=0, flood_limit=10)
    assert d.push == [] and [s.title for s in d.updated] == ["Post 2, corrected"]


def test_keys_that_only_look_derived_are_left_alone() -> None:
    """A guid with a fragment is a guid: with nothing stored under it, nothing moves."""
    incoming = [post("https://e.org/a#1", 2), post("https://e.org/a", 1)]
    assert adopt_stored_keys(incoming, {}) == incoming
    stored = {"https://e.org/a": post("https://e.org/a", 1)}
    assert adopt_stored_keys(incoming, stored) == incoming
