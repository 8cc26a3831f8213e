"""Decide what a poll means: which statements are new, which are pushed, which were edited.

Pure: takes what the feed shows and what the store knows, returns a decision. The store applies
it in one transaction.
"""

from __future__ import annotations

import hashlib
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


# ---- posts that share a guid ------------------------------------------------------------------
# parse gives each post of a shared guid a key of its own: the oldest keeps the guid, the others
# get guid#link (or guid#sha256:...). Which one kept the plain guid is a rule that changed (it was
# the first in the document, the newest), so a stored family may carry its keys the other way
# round: matched here by content, each post keeps the key it was stored under, and is neither
# pushed again nor taken for its sibling's correction.


def shared_guid_bases(statements: Sequence[Statement]) -> set[str]:
    """The keys of `statements` that others were derived from (key#...)."""
    keys = {s.key for s in statements}
    bases: set[str] = set()
    for key in keys:
        at = key.find("#")
        while at > 0:
            if key[:at] in keys:
                bases.add(key[:at])
            at = key.find("#", at + 1)
    return bases


def adopt_stored_keys(
    statements: Sequence[Statement], family: Mapping[str, Statement]
) -> list[Statement]:
    """`statements` with each post of a shared guid under the key it is stored under, if it is
    stored (`family`: the stored posts of those guids, by key). A post is the stored one with
    its link when the family's links tell its posts apart (a corrected title is the same post),
    else the one with its title and date."""
    if not family:
        return list(statements)
    result = list(statements)
    for base in shared_guid_bases(statements):
        members = [i for i, s in enumerate(result) if _in_family(s.key, base)]
        stored = [s for key, s in family.items() if _in_family(key, base)]
        stored_links = [s.link for s in stored]
        member_links = [result[i].link for i in members]
        by_link = all(stored_links + member_links) and (
            _distinct(stored_links) and _distinct(member_links)
        )

        assigned: dict[int, str] = {}
        for i in members:
            match = next((s for s in stored if _same_post(result[i], s, by_link)), None)
            if match is not None:
                assigned[i] = match.key
                stored.remove(match)
        taken = set(assigned.values())
        used = {s.key for s in result} | set(family)
        for i in members:
            key = assigned.get(i)
            if key is None and result[i].key in taken:  # a new post whose key a stored one keeps
                key = _fresh_key(base, result[i], used)
            if key is not None and key != result[i].key:
                used.add(key)
                result[i] = replace(result[i], key=key)
    return result


def _in_family(key: str, base: str) -> bool:
    return key == base or key.startswith(base + "#")


def _same_post(a: Statement, b: Statement, by_link: bool) -> bool:
    return a.link == b.link if by_link else (a.title, a.published) == (b.title, b.published)


def _distinct(values: list[str]) -> bool:
    return len(set(values)) == len(values)


def _fresh_key(base: str, s: Statement, used: set[str]) -> str:
    basis = "\n".join((s.title, s.published.isoformat() if s.published else "", s.link, s.lead))
    key = f"{base}#sha256:{hashlib.sha256(basis.encode('utf-8')).hexdigest()[:16]}"
    n = 2
    candidate = key
    while candidate in used:
        candidate = f"{key}-{n}"
        n += 1
    return candidate
