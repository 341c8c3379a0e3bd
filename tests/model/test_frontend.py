"""The audio front end: chunking and placeholder counts (pure), and the log-mel features (torch)."""

from __future__ import annotations

from assistant.model.stepaudio2.frontend import MIN_SAMPLES, chunk_bounds, mel_frames, placeholder_count


def test_placeholder_counts_match_stepfuns_formula_at_known_points() -> None:
    # 1 s → 102 frames → 13 embeddings; 25 s → 2502 frames → 313 (reference figures).
    assert mel_frames(16_000) == 102 and placeholder_count(102) == 13
    assert mel_frames(400_000) == 2502 and placeholder_count(2502) == 313
    assert placeholder_count(mel_frames(MIN_SAMPLES)) >= 1


def test_placeholders_grow_at_about_twelve_and_a_half_per_second() -> None:
    counts = [placeholder_count(mel_frames(seconds * 16_000)) for seconds in range(1, 26)]
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))
    assert abs(counts[-1] / 25 - 12.5) < 0.1


def test_long_audio_is_cut_into_chunks_of_at_most_25_seconds() -> None:
    bounds = chunk_bounds(round(27.3 * 16_000))
    assert bounds == [(0, 400_000), (400_000, 436_800)]
    assert chunk_bounds(400_000) == [(0, 400_000)]


def test_a_tiny_tail_is_a_chunk_of_its_own_as_stepfun_cuts_it() -> None:
    assert chunk_bounds(400_000 + 100) == [(0, 400_000), (400_000, 400_100)]


def test_with_even_tail_a_tiny_tail_is_evened_out_with_the_chunk_before() -> None:
    bounds = chunk_bounds(400_000 + 100, even_tail=True)
    assert len(bounds) == 2
    assert all(end - start >= MIN_SAMPLES for start, end in bounds)
    assert bounds[0][0] == 0 and bounds[-1][1] == 400_100
