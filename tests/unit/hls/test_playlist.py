"""MediaPlaylist: RFC 8216 rules checked by parsing the rendered text with m3u8."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import m3u8
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.hls.playlist import MediaPlaylist

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def fill(playlist: MediaPlaylist, durations: list[float],
         discontinuities: frozenset[int] = frozenset(), first: int = 0) -> None:
    when = T0
    for i, duration in enumerate(durations):
        playlist.add(f"seg{first + i:05d}.ts", duration, when, i in discontinuities)
        when += timedelta(seconds=duration)


def test_renders_rfc8216_live_playlist() -> None:
    playlist = MediaPlaylist(11, window=3)
    fill(playlist, [10.0, 10.04, 9.96, 10.0, 10.0])
    text = playlist.render()
    assert text.startswith("#EXTM3U\n")
    parsed = m3u8.loads(text)
    assert parsed.version == 3
    assert parsed.target_duration == 11
    assert parsed.media_sequence == 2
    assert not parsed.is_endlist
    assert [s.uri for s in parsed.segments] == ["seg00002.ts", "seg00003.ts", "seg00004.ts"]
    assert "#EXTINF:9.960," in text
    assert [s.program_date_time for s in parsed.segments] == [
        T0 + timedelta(seconds=20.04), T0 + timedelta(seconds=30.0),
        T0 + timedelta(seconds=40.0)]
    assert "#EXT-X-ENDLIST" not in text


def test_media_sequence_zero_is_stated() -> None:
    playlist = MediaPlaylist(10)
    fill(playlist, [10.0])
    assert "#EXT-X-MEDIA-SEQUENCE:0\n" in playlist.render()
    assert m3u8.loads(playlist.render()).media_sequence == 0


def test_media_sequence_starts_where_asked() -> None:
    playlist = MediaPlaylist(10, window=2, media_sequence=40)
    fill(playlist, [10.0] * 3, first=40)
    parsed = m3u8.loads(playlist.render())
    assert parsed.media_sequence == 41
    assert parsed.segments[0].uri == "seg00041.ts"


def test_endlist() -> None:
    playlist = MediaPlaylist(10)
    fill(playlist, [10.0, 4.2])
    playlist.end()
    parsed = m3u8.loads(playlist.render())
    assert parsed.is_endlist
    assert parsed.segments[-1].duration == pytest.approx(4.2)
    with pytest.raises(ValueError):
        playlist.add("x.ts", 1.0, T0, False)


def test_discontinuity_sequence_advances_when_a_flagged_segment_leaves() -> None:
    playlist = MediaPlaylist(10, window=2)
    fill(playlist, [10.0] * 3, discontinuities=frozenset({1}))
    parsed = m3u8.loads(playlist.render())
    assert not parsed.discontinuity_sequence  # absent means 0
    assert [s.discontinuity for s in parsed.segments] == [True, False]
    playlist.add("seg00003.ts", 10.0, T0 + timedelta(seconds=30), False)
    parsed = m3u8.loads(playlist.render())
    assert parsed.discontinuity_sequence == 1
    assert parsed.media_sequence == 2
    assert not any(s.discontinuity for s in parsed.segments)


def test_overlong_segment_listed_but_target_kept() -> None:
    playlist = MediaPlaylist(10, window=3)
    fill(playlist, [10.0, 10.49, 10.5])  # 10.5 rounds to 11 (Python's round() says 10)
    parsed = m3u8.loads(playlist.render())
    assert parsed.target_duration == 10
    assert len(parsed.segments) == 3
    assert playlist.overlong == 1


def test_expiry_waits_segment_plus_playlist_duration() -> None:
    playlist = MediaPlaylist(10, window=2)
    fill(playlist, [10.0, 10.0])
    assert playlist.expired(1e12) == []
    # seg0 leaves when seg2 is added at t=30 (its end); the playlist that last listed it
    # lasted 20 s, and seg0 itself 10 s: deletable from t=60.
    playlist.add("seg00002.ts", 10.0, T0 + timedelta(seconds=20), False, now=T0.timestamp() + 30)
    t0 = T0.timestamp()
    assert playlist.expired(t0 + 59.9) == []
    assert playlist.expired(t0 + 60.0) == ["seg00000.ts"]
    assert playlist.expired(t0 + 1000) == []  # returned once


def test_expiry_defaults_to_segment_end_as_now() -> None:
    playlist = MediaPlaylist(10, window=1)
    fill(playlist, [4.0, 6.0])  # seg1 ends at 10 s; seg0 (4 s) listed in a 4 s playlist
    assert playlist.expired(T0.timestamp() + 17.9) == []
    assert playlist.expired(T0.timestamp() + 18.0) == ["seg00000.ts"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MediaPlaylist(0)
    with pytest.raises(ValueError):
        MediaPlaylist(10, window=0)


@given(
    window=st.integers(1, 8),
    segments=st.lists(st.tuples(st.floats(0.5, 10.4), st.booleans()), min_size=1, max_size=40),
)
def test_window_rules_hold(window: int, segments: list[tuple[float, bool]]) -> None:
    playlist = MediaPlaylist(10, window=window)
    when = T0
    removed: list[str] = []
    for i, (duration, discontinuity) in enumerate(segments):
        playlist.add(f"seg{i:05d}.ts", duration, when, discontinuity)
        when += timedelta(seconds=duration)
        removed += playlist.expired(when.timestamp())
        parsed = m3u8.loads(playlist.render())
        listed = [s.uri for s in parsed.segments]
        assert len(listed) == min(i + 1, window)
        assert parsed.media_sequence == i + 1 - len(listed)
        assert listed[-1] == f"seg{i:05d}.ts"
        gone = segments[: parsed.media_sequence]
        assert (parsed.discontinuity_sequence or 0) == sum(1 for _, d in gone if d)
        assert all(round(s.duration) <= parsed.target_duration for s in parsed.segments)
        assert not set(removed) & set(listed)
        # Nothing is deleted before it has been out of the playlist for its own duration.
        assert len(removed) <= parsed.media_sequence
    removed += playlist.expired(1e12)
    assert removed == [f"seg{i:05d}.ts" for i in range(len(segments) - min(len(segments),
                                                                            window))]
