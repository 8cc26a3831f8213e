"""Decide what a poll means: which statements are new, which are pushed, which were edited.

Pure: takes what the feed shows and what the store knows, returns a decision. The store applies
it in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bot.model import Statement


@dataclass(frozen=True)
class PollDecision:
    push: list[Statement] = field(default_factory=list)  # new, to deliver; oldest first
    silent: list[Statement] = field(default_factory=list)  # new, recorded without a push
    updated: list[Statement] = field(default_factory=list)  # known key, changed content
    held_back: int = 0  # new items the flood guard recorded silently

    @property
    def new(self) -> list[Statement]:
        """Every new statement in the order to store it: oldest first, pushed ones last."""
        return self.silent + self.push


def oldest_first(statements: Sequence[Statement]) -> list[Statement]:
    """Feeds list newest first; dated entries are sorted by date (ties keep feed order)."""
    reverse_feed_order = list(reversed(statements))
    if all(s.published is not None for s in reverse_feed_order):
        return sorted(reverse_feed_order, key=lambda s: s.published)  # type: ignore[arg-type,return-value]
    return reverse_feed_order


def unique_by_key(statements: Sequence[Statement]) -> list[Statement]:
    """A feed that repeats a key keeps its first (topmost) entry, as a reader would see it."""
    seen: set[str] = set()
    unique = []
    for s in statements:
        if s.key not in seen:
            seen.add(s.key)
            unique.append(s)
    return unique


def decide(
    incoming: Sequence[Statement],
    known: Mapping[str, Statement],
    *,
    first_poll: bool,
    announce_first: int,
    flood_limit: int,
    edits_allowed: bool = True,
    compare_leads: bool = True,
) -> PollDecision:
    """What to do with one poll's entries (`incoming`, in feed order: newest first).

    New means a key never seen for this feed. The first poll is a baseline that pushes only the
    newest `announce_first`; later polls push every new item, but at most `flood_limit` of them
    (a site migration that changes every guid must not flood subscribers). Without
    `edits_allowed` (a document read through a guessed encoding) stored text is never replaced.
    Without `compare_leads` (leads stored from each statement's own page) a different lead is
    no edit, and an edit of the title keeps the stored lead.
    """
    entries = unique_by_key(incoming)
    new = oldest_first([s for s in entries if s.key not in known])

    def content(s: Statement) -> tuple[object, ...]:
        return (s.title, s.link, s.published) + ((s.lead,) if compare_leads else ())

    updated = [
        s if compare_leads else replace(s, lead=known[s.key].lead)
        for s in entries
        if edits_allowed and s.key in known and content(s) != content(known[s.key])
    ]

    limit = announce_first if first_poll else flood_limit
    cut = max(0, len(new) - limit)
    push, silent = new[cut:], new[:cut]
    held_back = 0 if first_poll else len(silent)
    return PollDecision(push=push, silent=silent, updated=updated, held_back=held_back)
