"""Server governance rules on their own (`bot.governance`): the blocklist's normalisation
and matching, a member's allowance from their roles, the server's limits on options, and
`bot.domain.check_quota` refusing a member whose roles allow nothing.

The blocklist tests read like an attacker's notebook: every way of writing a blocked word
that a person still reads (or a model still understands) as that word must be caught,
and ordinary words that merely contain it must not be."""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime

import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GuildRules,
    Quality,
    QuotaStatus,
    QuotaUnit,
    RoleAllowance,
    check_quota,
)
from bot.errors import BotError, GenerationDisabledError, InvalidInputError, QuotaExceededError
from bot.governance import (
    MAX_PHRASE_LENGTH,
    MemberAllowance,
    NotAllowedHereError,
    _ignorable,
    check_server_limits,
    contains_blocked,
    member_allowance,
    normalise_phrase,
    normalise_text,
)


def blocks(prompt: str, *phrases: str) -> bool:
    """Whether `prompt` is refused by a blocklist of `phrases`, stored as moderators'
    `/sora block` stores them."""
    return contains_blocked(prompt, [normalise_phrase(p) for p in phrases])


# Word boundaries


@pytest.mark.parametrize(
    "prompt",
    [
        "ass",
        "ASS!",
        "an ass",
        "Ass, and more",
        "(ass)",
        "the ass's tail",
        "ass-hat",
        '"ass"',
        "**ass**",  # Discord bold
        "||ass||",  # Discord spoiler
        "`ass`",
        "ass\nsecond line",
    ],
)
def test_a_phrase_matches_as_a_whole_word(prompt: str) -> None:
    assert blocks(prompt, "ass")


@pytest.mark.parametrize("prompt", ["class", "assassin", "bass guitar", "passage", "glasses"])
def test_a_phrase_does_not_match_inside_a_longer_word(prompt: str) -> None:
    assert not blocks(prompt, "ass")


def test_digits_are_part_of_a_word() -> None:
    assert not blocks("ass2 and 2ass", "ass")
    assert blocks("route 66 tonight", "66")
    assert not blocks("route 666 tonight", "66")


@pytest.mark.parametrize("prompt", ["_ass_", "__ass__", "my_ass_here"])
def test_an_underscore_does_not_hide_a_word(prompt: str) -> None:
    """`_word_` is Discord's italics, `__word__` its underline: still the word."""
    assert blocks(prompt, "ass")


def test_an_empty_blocklist_blocks_nothing() -> None:
    assert not contains_blocked("anything at all", [])
    assert not contains_blocked("anything at all", [""])


def test_any_phrase_on_the_list_is_enough() -> None:
    assert blocks("a calm lake with a duck", "storm", "duck", "fire")
    assert not blocks("a calm lake with a swan", "storm", "duck", "fire")


# Phrases of several words


def test_a_multi_word_phrase_matches_across_any_whitespace() -> None:
    for prompt in [
        "a bad word here",
        "a bad    word here",
        "a bad\nword",
        "a bad\t \n word",
        "a BAD\u00a0WORD",  # no-break space
        "a bad\u3000word",  # ideographic space
        "a bad\u2028word",  # line separator
    ]:
        assert blocks(prompt, "bad word"), prompt


def test_a_multi_word_phrase_needs_all_its_words_in_order() -> None:
    assert not blocks("bad", "bad word")
    assert not blocks("word bad", "bad word")
    assert not blocks("badword", "bad word")
    assert not blocks("bad and word", "bad word")
    assert not blocks("bad words", "bad word")
    assert not blocks("abad word", "bad word")


def test_a_phrase_stored_with_odd_spacing_still_matches() -> None:
    assert normalise_phrase("  Bad \n\t Word  ") == "bad word"
    assert blocks("bad word", "  Bad \n\t Word  ")


# Case and Unicode forms


def test_case_does_not_matter_either_way() -> None:
    assert blocks("a BaD WoRd", "bad word")
    assert blocks("a bad word", "BAD WORD")


def test_full_width_letters_are_plain_letters() -> None:
    assert normalise_text("\uff21\uff33\uff33") == "ass"
    assert blocks("\uff21\uff33\uff33\uff01", "ass")
    assert blocks("ass", "\uff41\uff53\uff53")


@pytest.mark.parametrize(
    "styled",
    [
        "\U0001d41a\U0001d42c\U0001d42c",  # mathematical bold
        "\U0001d552\U0001d564\U0001d564",  # double-struck
        "\U0001d4b6\U0001d4c8\U0001d4c8",  # script
        "\u24d0\u24e2\u24e2",  # circled
        "\U0001f130\U0001f142\U0001f142",  # squared capitals
        "\u1d43\u02e2\u02e2",  # superscript
    ],
)
def test_styled_letters_are_plain_letters(styled: str) -> None:
    assert normalise_text(styled) == "ass"
    assert blocks(f"an {styled} here", "ass")


def test_ligatures_are_their_letters() -> None:
    assert normalise_text("\ufb01ne") == "fine"  # "ﬁ"
    assert blocks("a \ufb01ne day", "fine")


def test_accents_are_dropped_both_ways() -> None:
    assert blocks("un café noir", "cafe")
    assert blocks("un cafe noir", "café")
    assert blocks("UN CAFÉ", "cafe")
    assert normalise_phrase("café") == "cafe"
    # Precomposed "é" and "e" + combining acute are the same.
    assert blocks("cafe\u0301", "caf\u00e9")
    assert blocks("caf\u00e9", "cafe\u0301")


def test_an_accent_does_not_join_or_split_words() -> None:
    assert not blocks("cafés", "cafe")
    assert blocks("café's", "cafe")


def test_piled_up_marks_are_dropped() -> None:
    """Zalgo text: a stack of marks on every letter."""
    zalgo = "a\u0300\u0301\u0302\u0303\u0330s\u0331\u0332\u0334\u0335s\u0336\u0337\u0338\u0489"
    assert normalise_text(zalgo) == "ass"
    assert blocks(zalgo, "ass")


@pytest.mark.parametrize(
    "mark",
    [
        "\u034f",  # combining grapheme joiner: a mark that combines with nothing
        "\ufe0f",  # variation selector-16
        "\ufe00",  # variation selector-1
        "\U000e0100",  # variation selector-17
        "\u20dd",  # combining enclosing circle
        "\u0488",  # combining Cyrillic hundred thousands sign (enclosing)
        "\u17b4",  # Khmer vowel inherent aq: shows nothing
        "\u180b",  # Mongolian free variation selector one
    ],
)
def test_marks_that_change_no_letter_are_dropped(mark: str) -> None:
    assert normalise_text(f"as{mark}s") == "ass"
    assert blocks(f"as{mark}s", "ass")
    assert blocks(f"a{mark}ss{mark}", "ass")


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
        "\ufeff",  # zero-width no-break space / byte order mark
        "\u00ad",  # soft hyphen
        "\u200e",  # left-to-right mark
        "\u202a",  # left-to-right embedding
        "\u2066",  # left-to-right isolate
        "\u2062",  # invisible times
        "\u180e",  # Mongolian vowel separator
        "\U000e0061",  # tag latin small letter a
        "\u2065",  # unassigned, but default-ignorable: shows nothing
        "\ufff0",  # unassigned, default-ignorable
        "\u3164",  # Hangul filler: a letter that shows as a blank
        "\u115f",  # Hangul choseong filler
        "\u1160",  # Hangul jungseong filler
        "\uffa0",  # half-width Hangul filler
        "\x00",  # control characters
        "\x07",
        "\x1f",  # a unit separator, which Python counts as whitespace
        "\x7f",
        "\x9b",
    ],
)
def test_invisible_characters_inside_a_word_are_removed(invisible: str) -> None:
    assert normalise_text(f"a{invisible}s{invisible}s") == "ass"
    assert blocks(f"a{invisible}s{invisible}s", "ass")
    assert blocks(f"{invisible}ass{invisible}", "ass")


def test_many_invisible_characters_together_are_removed() -> None:
    assert blocks("a\u200b\u200c\u200d\u2060\u00ad\u034f\ufe0fss", "ass")


def test_a_zero_width_space_does_not_separate_words() -> None:
    """It joins what it stands between; it is no space."""
    assert not blocks("bad\u200bword", "bad word")
    assert blocks("bad\u200bword", "badword")


def test_an_invisible_character_in_the_phrase_is_removed_too() -> None:
    assert normalise_phrase("a\u200bs\u00ads") == "ass"
    assert blocks("ass", "a\u200bs\u00ads")


def test_line_breaks_and_tabs_are_spaces_not_removed() -> None:
    """The control characters that are whitespace separate words; they do not join them."""
    assert normalise_text("bad\tword\r\nnext\x0bone\x0cmore\x85end") == (
        "bad word next one more end"
    )
    assert not blocks("as\ts", "ass")


def test_the_turkish_dotted_capital_i_is_an_i() -> None:
    assert normalise_text("İSTANBUL") == "istanbul"
    assert blocks("İstanbul at night", "istanbul")
    assert blocks("istanbul at night", "İSTANBUL")


def test_the_turkish_dotless_i_stays_its_own_letter() -> None:
    """The dotless i (U+0131) is a letter of its own, not "i" without its accent: "k\u0131r"
    (countryside) is not "kir" (dirt)."""
    assert normalise_text("k\u0131r") == "k\u0131r"
    assert not blocks("k\u0131r", "kir")
    assert blocks("KIR", "kir")  # the Latin capital I is an i


def test_the_german_sharp_s_is_ss_both_ways() -> None:
    assert normalise_text("Straße") == "strasse"
    assert normalise_text("STRASSE") == "strasse"
    assert normalise_text("\u1e9e") == "ss"  # capital sharp s
    assert blocks("die Straße", "strasse")
    assert blocks("die STRASSE", "straße")
    assert blocks("die Strasse", "STRAẞE")


def test_greek_final_sigma_is_a_sigma() -> None:
    assert normalise_text("ΟΔΟΣ") == normalise_text("οδος") == normalise_text("οδοσ")


def test_normalised_text_is_stable() -> None:
    """What comes out reads the same when normalised again: the stored phrase and the
    prompt meet in one form."""
    samples = [
        "Ｃａｆé  ŒUVRE\u200b ß İ ﬁ ǅ ½ ² Ⅻ \u0344 \u0390 \u1e9b\u0323 \uffa0ㄱ\u3164ㅏ",
        "a\u0301\u034f\ufe0f\u20dd b\x00c\x1fd",
    ]
    for text in samples:
        once = normalise_text(text)
        assert normalise_text(once) == once
        assert once == once.casefold()


def test_text_without_accents_comes_out_composed() -> None:
    """Dropping accents takes the text apart; what is left is put back together, so a
    stored phrase reads as it was typed: Hangul syllables stay syllables."""
    assert normalise_text("서울의 밤") == "서울의 밤"
    assert normalise_phrase("서울") == "서울"
    assert blocks("서울의 밤", "서울의")


def test_examples_from_the_docstring() -> None:
    assert normalise_text("Ｃａｆé") == normalise_text("CAFE") == normalise_text("ca\u200bfe")
    assert normalise_text("CAFE") == "cafe"


# Punctuation and regex metacharacters


def test_a_phrase_ending_in_punctuation_matches_where_it_is_written() -> None:
    assert blocks("I write C++ daily", "c++")
    assert blocks("c++", "C++")
    assert blocks("(c++)", "c++")
    assert blocks("C++17", "c++")  # the "+" edge needs no boundary
    assert not blocks("abc++", "c++")  # but the letter edge does
    assert not blocks("c+", "c++")
    assert not blocks("c", "c++")


def test_a_phrase_starting_with_punctuation() -> None:
    assert blocks("tag #nsfw here", "#nsfw")
    assert blocks("#nsfw", "#NSFW")
    assert blocks("see x#nsfw", "#nsfw")  # the "#" edge needs no boundary
    assert not blocks("tag #nsfwx", "#nsfw")
    assert not blocks("nsfw", "#nsfw")


@pytest.mark.parametrize(
    ("phrase", "literal", "not_literal"),
    [
        ("a.b", "a.b", "axb"),
        ("a*", "a*", "aaa"),
        ("a+b", "a+b", "aab"),
        ("a?b", "a?b", "ab"),
        ("(a|b)", "(a|b)", "a"),
        ("[ab]", "[ab]", "a"),
        ("a{2}", "a{2}", "aa"),
        ("^a$", "^a$", "a"),
        ("a\\d", "a\\d", "a1"),
        ("a\\", "a\\", "a"),
        ("[a", "[a", "a"),
        ("a)", "a)", "a"),
        ("x.*y", "x.*y", "x and y"),
    ],
)
def test_regex_metacharacters_are_literal(phrase: str, literal: str, not_literal: str) -> None:
    assert blocks(f"say {literal} now", phrase)
    assert not blocks(f"say {not_literal} now", phrase)


# Storing a phrase


@pytest.mark.parametrize(
    "phrase",
    [
        "",
        "   ",
        "\n\t ",
        "\u0301\u0302",  # marks only
        "\u200b\u200d\u00ad",  # invisible only
        "!!!",
        "+ - *",
        "\u3164",  # a Hangul filler shows as nothing
        "__",
    ],
)
def test_a_phrase_without_a_letter_or_digit_is_refused(phrase: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        normalise_phrase(phrase)
    assert "letter or digit" in refused.value.user_message


def test_a_phrase_of_one_letter_or_digit_is_enough() -> None:
    assert normalise_phrase("X") == "x"
    assert normalise_phrase("7") == "7"
    assert normalise_phrase(" é ") == "e"


def test_a_phrase_at_the_length_limit_is_kept() -> None:
    phrase = "a" * MAX_PHRASE_LENGTH
    assert normalise_phrase(phrase) == phrase


def test_a_phrase_over_the_length_limit_is_refused() -> None:
    with pytest.raises(InvalidInputError) as refused:
        normalise_phrase("a" * (MAX_PHRASE_LENGTH + 1))
    assert str(MAX_PHRASE_LENGTH) in refused.value.user_message
    assert "at most" in refused.value.user_message


def test_the_length_is_counted_after_normalising() -> None:
    # Spaces and invisible characters collapse away: within the limit.
    padded = "a" + " " * 300 + "\u200b" * 300 + "b"
    assert normalise_phrase(padded) == "a b"
    # "ß" is "ss": 51 of them are 102 letters.
    with pytest.raises(InvalidInputError):
        normalise_phrase("ß" * (MAX_PHRASE_LENGTH // 2 + 1))


# Phrases stored under other rules


def test_a_phrase_stored_unnormalised_still_matches() -> None:
    """The list is compared as the rules read it now, whatever form a phrase was kept in."""
    assert contains_blocked("a café", ["Café"])
    assert contains_blocked("ass", ["a\u034fss"])
    assert not contains_blocked("anything", ["\u200b"])


# A member's allowance


def test_without_an_allowance_role_the_server_limit_applies() -> None:
    assert member_allowance(5, [], [1, 2]) == MemberAllowance(5, None)
    assert member_allowance(5, [RoleAllowance(9, 50)], [1, 2]) == MemberAllowance(5, None)
    assert member_allowance(None, [RoleAllowance(9, 50)], []) == MemberAllowance(None, None)


def test_an_allowance_role_replaces_the_server_limit() -> None:
    assert member_allowance(5, [RoleAllowance(9, 50)], [1, 9]) == MemberAllowance(50, 9)
    # Even when it is smaller, and when the server has no per-member limit at all.
    assert member_allowance(5, [RoleAllowance(9, 2)], [9]) == MemberAllowance(2, 9)
    assert member_allowance(None, [RoleAllowance(9, 2)], [9]) == MemberAllowance(2, 9)


def test_an_allowance_of_zero_is_kept_with_its_role() -> None:
    assert member_allowance(5, [RoleAllowance(9, 0)], [9]) == MemberAllowance(0, 9)


def test_the_largest_allowance_among_the_members_roles_wins() -> None:
    allowances = [RoleAllowance(1, 10), RoleAllowance(2, 30), RoleAllowance(3, 20)]
    assert member_allowance(5, allowances, [1, 2, 3]) == MemberAllowance(30, 2)
    assert member_allowance(5, allowances, [3, 1]) == MemberAllowance(20, 3)
    assert member_allowance(5, list(reversed(allowances)), [1, 2, 3]) == MemberAllowance(30, 2)
    # A larger allowance on a role the member does not hold counts for nothing.
    assert member_allowance(5, allowances, [1]) == MemberAllowance(10, 1)


def test_a_zero_allowance_loses_to_any_other_role() -> None:
    allowances = [RoleAllowance(1, 0), RoleAllowance(2, 3)]
    assert member_allowance(5, allowances, [1, 2]) == MemberAllowance(3, 2)


def test_equal_allowances_give_that_allowance() -> None:
    allowances = [RoleAllowance(1, 7), RoleAllowance(2, 7)]
    result = member_allowance(5, allowances, [1, 2])
    assert result.limit == 7
    assert result.role_id in {1, 2}


def test_allowances_and_roles_may_be_one_pass_iterables() -> None:
    allowances = (a for a in [RoleAllowance(1, 4), RoleAllowance(2, 8)])
    roles = (r for r in [2, 1])
    assert member_allowance(5, allowances, roles) == MemberAllowance(8, 2)


# The server's limits on options


def options(duration: int = 8, quality: Quality = Quality.STANDARD) -> GenerationOptions:
    return GenerationOptions(duration_seconds=duration, quality=quality)


def test_without_limits_anything_goes() -> None:
    check_server_limits(options(60, Quality.HIGH), GuildRules())


def test_a_video_up_to_the_longest_allowed_passes() -> None:
    rules = GuildRules(max_duration=8)
    check_server_limits(options(8), rules)
    check_server_limits(options(4), rules)


def test_a_longer_video_is_refused_naming_the_longest_allowed() -> None:
    with pytest.raises(NotAllowedHereError) as refused:
        check_server_limits(options(12), GuildRules(max_duration=8))
    message = refused.value.user_message
    assert "at most **8 seconds**" in message
    assert "you asked for 12" in message
    assert "quality" not in message
    assert message.endswith("Nothing was charged.")
    assert isinstance(refused.value, BotError)


def test_high_quality_is_refused_where_it_is_off() -> None:
    rules = GuildRules(high_quality=False)
    check_server_limits(options(quality=Quality.STANDARD), rules)
    with pytest.raises(NotAllowedHereError) as refused:
        check_server_limits(options(quality=Quality.HIGH), rules)
    message = refused.value.user_message
    assert "**standard** quality only" in message
    assert "seconds" not in message
    assert "Nothing was charged." in message


def test_high_quality_passes_where_it_is_on() -> None:
    check_server_limits(options(quality=Quality.HIGH), GuildRules(high_quality=True))


def test_both_problems_are_named_together() -> None:
    with pytest.raises(NotAllowedHereError) as refused:
        check_server_limits(
            options(20, Quality.HIGH), GuildRules(max_duration=10, high_quality=False)
        )
    assert refused.value.user_message == (
        "This server allows videos of at most **10 seconds** (you asked for 20) and "
        "**standard** quality only. Nothing was charged."
    )


# The quota when a member's roles allow nothing

TOMORROW = datetime(2026, 11, 25, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 12, 1, tzinfo=UTC)


def quota(
    *, user_daily: int | None, role: int | None, daily: int = 10, mine: int = 0
) -> QuotaStatus:
    return QuotaStatus(
        limits=EffectiveLimits(daily, 100, user_daily, QuotaUnit.VIDEOS),
        guild_used_today=0,
        guild_used_month=0,
        user_used_today=mine,
        day_resets_at=TOMORROW,
        month_resets_at=NEXT_MONTH,
        user_limit_role=role,
    )


def test_a_role_allowance_of_zero_refuses_with_its_own_message() -> None:
    with pytest.raises(BotError) as refused:
        check_quota(quota(user_daily=0, role=9), 1)
    assert type(refused.value) is BotError  # not "generation is off in this server"
    message = refused.value.user_message
    assert "roles" in message
    assert "nothing was charged" in message.lower()
    assert "turned off" not in message


def test_the_role_message_comes_before_the_server_being_off() -> None:
    with pytest.raises(BotError) as refused:
        check_quota(quota(user_daily=0, role=9, daily=0), 1)
    assert not isinstance(refused.value, GenerationDisabledError)
    assert "roles" in refused.value.user_message


def test_a_zero_server_per_member_limit_is_generation_off() -> None:
    with pytest.raises(GenerationDisabledError):
        check_quota(quota(user_daily=0, role=None), 1)


def test_a_role_allowance_above_zero_is_an_ordinary_limit() -> None:
    check_quota(quota(user_daily=2, role=9, mine=1), 1)
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(quota(user_daily=2, role=9, mine=2), 1)
    assert refused.value.user_message.startswith("You have used your 2 videos for today.")


def test_the_ascii_fast_path_reads_text_exactly_as_the_general_one() -> None:
    """`normalise_text` skips the Unicode steps for ASCII text; they must agree."""

    def general(text: str) -> str:
        folded = unicodedata.normalize("NFKC", text).casefold()
        kept = "".join(c for c in unicodedata.normalize("NFKD", folded) if not _ignorable(c))
        return " ".join(unicodedata.normalize("NFKC", kept).split())

    rng = random.Random(14)
    for _ in range(5000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(40)))
        assert normalise_text(text) == general(text), repr(text)
