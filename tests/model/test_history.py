"""History entries: layout, prefix keys, and the token budget."""

from __future__ import annotations

from assistant.model.stepaudio2.history import AudioSpan, Entry, assemble, common_prefix, fit, size
from assistant.model.stepaudio2.tokens import AUDIO_PATCH


def entry(role: str, n: int, exchange: int, *, folded: int | None = None) -> Entry:
    small = Entry(role, tuple(range(folded)), exchange) if folded is not None else None  # type: ignore[arg-type]
    return Entry(role, tuple(range(n)), exchange, folded=small)  # type: ignore[arg-type]


def conversation() -> list[Entry]:
    return [
        entry("system", 50, 0),
        entry("tools", 50, 0),
        entry("human", 40, 1),
        entry("assistant", 300, 1, folded=20),
        entry("human", 40, 2),
        entry("assistant", 300, 2, folded=20),
        entry("human", 40, 3),
    ]


def test_nothing_changes_within_the_budget() -> None:
    entries = conversation()
    assert fit(entries, size(entries)) == entries


def test_old_spoken_answers_are_folded_first_oldest_first() -> None:
    entries = conversation()
    kept = fit(entries, 800, shrink_to=0.75)  # 820 tokens, target 600: folding the first answer is enough
    assert [len(e.tokens) for e in kept] == [50, 50, 40, 20, 40, 300, 40]
    assert size(kept) <= 600


def test_whole_exchanges_are_dropped_when_folding_is_not_enough_but_pinned_and_latest_stay() -> None:
    entries = conversation()
    kept = fit(entries, 200, shrink_to=0.75)
    assert [(e.role, e.exchange) for e in kept] == [("system", 0), ("tools", 0), ("human", 3)]


def test_the_latest_exchange_is_kept_even_over_budget() -> None:
    entries = [entry("system", 50, 0), entry("human", 500, 1)]
    assert fit(entries, 100) == entries


def test_keys_tell_different_utterances_apart_even_with_equal_tokens() -> None:
    tokens = (1, *([AUDIO_PATCH] * 3), 2)
    first = Entry("human", tokens, 1, (AudioSpan(1, 3, uid=7),))
    second = Entry("human", tokens, 1, (AudioSpan(1, 3, uid=8),))
    assert first.tokens == second.tokens
    assert common_prefix(first.keys(), second.keys()) == 1


def test_assemble_shifts_audio_offsets_and_keeps_keys_in_step() -> None:
    head = Entry("system", (5, 6), 0)
    human = Entry("human", (1, AUDIO_PATCH, AUDIO_PATCH, 2), 1, (AudioSpan(1, 2, uid=0),))
    layout = assemble([head, human])
    assert layout.tokens == [5, 6, 1, AUDIO_PATCH, AUDIO_PATCH, 2]
    assert layout.keys == [5, 6, 1, -1, -1, 2]
    assert layout.audio == [AudioSpan(3, 2, uid=0)]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
