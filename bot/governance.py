"""Server governance rules: role allowances, the blocklist, the server's limits, approvals.

Pure data and decisions, no I/O: the store keeps these settings per server and the
moderation service changes them; here is only what they mean. Each rule has its own
tests (`tests/test_governance_rules.py`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain import GenerationOptions, GuildRules, Quality, RoleAllowance
from bot.errors import BotError, InvalidInputError

MAX_ALLOWANCE = 1_000_000
MAX_PHRASE_LENGTH = 100
MAX_PHRASES = 500  # per server; matching stays fast, the list stays readable


# What the blocklist looks through: anything that shows nothing of its own between two
# letters, so that "a<it>ss" reads "ass". Category Cf (zero-width spaces and joiners, soft
# hyphens, bidi and tag characters), every combining and enclosing mark (accents, but
# also ones that combine with nothing: the grapheme joiner, variation selectors),
# control characters other than line breaks and tabs, the Hangul fillers (letters that
# show as a blank) and the still unassigned default-ignorable code points.
_SPACE_CONTROLS = frozenset("\t\n\v\f\r\x85")
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_ASCII_CONTROLS = {c: None for c in (*range(0x20), 0x7F) if chr(c) not in _SPACE_CONTROLS}


def _ignorable(c: str) -> bool:
    category = unicodedata.category(c)
    if category in ("Cf", "Mn", "Me") or unicodedata.combining(c):
        return True
    if category == "Cc":
        return c not in _SPACE_CONTROLS
    point = ord(c)
    return (
        c in _BLANK_LETTERS
        or point == 0x2065
        or 0xFFF0 <= point <= 0xFFF8
        or 0xE0000 <= point <= 0xE0FFF
    )


def normalise_text(text: str) -> str:
    """Text as the blocklist compares it: compatibility forms folded (full-width and
    styled letters become plain, NFKC), case folded, accents and other marks dropped,
    invisible characters removed and every run of spaces made one space. "Ｃａｆé",
    "CAFE" and "ca\u200bfe" all read "cafe"."""
    if text.isascii():
        # The common case, the same result at a fraction of the cost: nothing to fold
        # but case, nothing invisible but control characters.
        return " ".join(text.lower().translate(_ASCII_CONTROLS).split())
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c for c in unicodedata.normalize("NFKD", folded) if not _ignorable(c))
    return " ".join(unicodedata.normalize("NFKC", kept).split())


def normalise_phrase(phrase: str) -> str:
    """A phrase as stored on the blocklist; raises `InvalidInputError` for one that could
    never match (nothing but spaces or marks) or is too long."""
    clean = normalise_text(phrase)
    if not any(c.isalnum() for c in clean):
        raise InvalidInputError("A blocked phrase needs at least one letter or digit.")
    if len(clean) > MAX_PHRASE_LENGTH:
        raise InvalidInputError(
            f"A blocked phrase can be at most {MAX_PHRASE_LENGTH} characters long."
        )
    return clean


# "Not after / before a letter or digit". Unlike \b, the underscore is no letter here:
# "_ass_" (Discord's italics) must still read "ass".
_NOT_AFTER_WORD = r"(?<![^\W_])"
_NOT_BEFORE_WORD = r"(?![^\W_])"


def _pattern(phrase: str) -> re.Pattern[str]:
    # On word boundaries: "ass" must not match "class". A phrase's edges are letters or
    # digits in most cases; where one ends in punctuation, that edge needs no boundary.
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    start = _NOT_AFTER_WORD if phrase[:1].isalnum() else ""
    end = _NOT_BEFORE_WORD if phrase[-1:].isalnum() else ""
    return re.compile(start + body + end)


def contains_blocked(prompt: str, phrases: Iterable[str]) -> bool:
    """Whether `prompt` contains any of `phrases` (stored normalised), compared after
    `normalise_text` and on word boundaries. Which phrase matched is deliberately not
    returned: nothing shows it back to the member."""
    text = normalise_text(prompt)
    # A phrase can only match where it stands as a substring (the text's spaces are
    # collapsed as the phrases' are): that C-speed test rules out nearly all of them,
    # and only those left are checked on word boundaries.
    return any(
        _pattern(phrase).search(text) for phrase in _cleaned(tuple(phrases)) if phrase in text
    )


@functools.lru_cache(maxsize=1024)
def _cleaned(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """A server's list, normalised again once per list (a phrase stored under older
    rules still matches under these). Checking 500 phrases one pattern at a time took
    10 ms a prompt, on the event loop; this way it takes well under one."""
    return tuple(sorted({normalise_text(p) for p in phrases} - {""}))


@dataclass(frozen=True, slots=True)
class MemberAllowance:
    """A member's own daily limit and where it comes from."""

    limit: int | None  # None: no per-member cap
    role_id: int | None  # the role that gives it; None: the server's per-member limit


def member_allowance(
    server_limit: int | None, allowances: Iterable[RoleAllowance], role_ids: Iterable[int]
) -> MemberAllowance:
    """The largest allowance among the roles the member holds replaces the server's
    per-member limit; with none of those roles, the server's limit applies."""
    held = set(role_ids)
    best: RoleAllowance | None = None
    for allowance in allowances:
        if allowance.role_id in held and (best is None or allowance.daily > best.daily):
            best = allowance
    if best is None:
        return MemberAllowance(server_limit, None)
    return MemberAllowance(best.daily, best.role_id)


class NotAllowedHereError(BotError):
    """A request beyond what this server allows (its longest video, high quality)."""


def check_server_limits(options: GenerationOptions, rules: GuildRules) -> None:
    """Refuse options beyond the server's limits, naming what is allowed. Called before
    anything is charged."""
    problems = []
    if rules.max_duration is not None and options.duration_seconds > rules.max_duration:
        problems.append(
            f"videos of at most **{rules.max_duration} seconds** "
            f"(you asked for {options.duration_seconds})"
        )
    if not rules.high_quality and options.quality is Quality.HIGH:
        problems.append("**standard** quality only")
    if problems:
        raise NotAllowedHereError(
            "This server allows " + " and ".join(problems) + ". Nothing was charged."
        )
