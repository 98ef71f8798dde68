"""Checks an HLS directory the way a player and RFC 8216 would: m3u8 rules, then ffprobe."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8

from relay.hls.playlist import rounded_duration
from relay.hls.segmenter import target_duration_for


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return json.loads(out.stdout)


def segments(playlist_path: Path) -> tuple[m3u8.M3U8, list[Path]]:
    playlist = m3u8.loads(playlist_path.read_text())
    return playlist, [playlist_path.parent / s.uri for s in playlist.segments]


def assert_extinf_within_target(playlist: m3u8.M3U8) -> None:
    """RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer (halves up), at most
    EXT-X-TARGETDURATION."""
    for segment in playlist.segments:
        assert rounded_duration(segment.duration) <= playlist.target_duration, (
            f"{segment.uri}: EXTINF {segment.duration} over EXT-X-TARGETDURATION "
            f"{playlist.target_duration}")


def check_playlist(playlist_path: Path, target: float, gop: float = 1.0) -> m3u8.M3U8:
    """RFC 8216 4.3.3.1 / 6.2.2 rules that a live playlist must keep, and the tightest target
    duration for the configured ``target`` and the camera's ``gop`` (the test cameras': 1 s)."""
    playlist, files = segments(playlist_path)
    assert playlist.target_duration == target_duration_for(target, gop), (
        f"EXT-X-TARGETDURATION {playlist.target_duration} for {target} s segments, {gop} s GOP")
    assert_extinf_within_target(playlist)
    for segment, file in zip(playlist.segments, files, strict=True):
        assert segment.program_date_time is not None
        assert file.exists(), file
    assert playlist.media_sequence is not None
    return playlist


def check_segments(playlist_path: Path, target: float) -> dict[str, Any]:
    """Every segment decodable, starting on a keyframe, PTS continuous, near the target, its
    media (as ffprobe reads it) within EXT-X-TARGETDURATION as its EXTINF is."""
    playlist, files = segments(playlist_path)
    assert files, "no segments listed"
    previous_end: float | None = None
    codecs: dict[str, Any] = {}
    for index, file in enumerate(files):
        info = ffprobe(file, "-show_streams", "-show_packets")
        for stream in info["streams"]:
            codecs[stream["codec_type"]] = stream
        video_index = next(s["index"] for s in info["streams"] if s["codec_type"] == "video")
        video = [p for p in info["packets"] if p["stream_index"] == video_index]
        assert video, f"{file.name}: no video packets"
        assert "K" in video[0]["flags"], f"{file.name}: does not start with a keyframe"
        first = float(video[0]["pts_time"])
        last = float(video[-1]["pts_time"])
        frame = float(video[-1].get("duration_time") or 0.04)
        if previous_end is not None:
            assert abs(first - previous_end) < 0.1, (
                f"{file.name}: video PTS jumps from {previous_end:.3f} to {first:.3f}"
            )
        previous_end = last + frame
        duration = last + frame - first
        assert rounded_duration(duration) <= playlist.target_duration, (
            f"{file.name}: {duration:.3f} s over EXT-X-TARGETDURATION {playlist.target_duration}")
        # the last segment may be cut short by the stop
        if index < len(files) - 1:
            assert target * 0.9 <= duration, f"{file.name}: {duration:.2f} s"
    return codecs


def assert_decode_times_increase(files: list[Path]) -> dict[str, int]:
    """Each track's decode times increase by at least a millisecond (FLV's unit) from packet to
    packet through ``files`` (an FLV recording, or a playlist's TS segments in order), as
    ffprobe reads them; returns packets per track kind.

    Equal or next-to-equal decode times fail too: that is what clamping a timeline that went
    back produces (frames one tick apart in TS, at the same millisecond in FLV).
    """
    last: dict[str, tuple[Fraction, str]] = {}
    counts: dict[str, int] = {}
    for file in files:
        info = ffprobe(file, "-show_streams", "-show_packets")
        streams = {s["index"]: (s["codec_type"], Fraction(s["time_base"])) for s in info["streams"]}
        for packet in info["packets"]:
            kind, time_base = streams[packet["stream_index"]]
            assert "dts" in packet, f"{file.name}: a {kind} packet without DTS: {packet}"
            dts = int(packet["dts"]) * time_base
            if kind in last:
                before, where = last[kind]
                assert dts - before >= Fraction(1, 1000), (
                    f"{kind} DTS {float(before):.6f} s ({where}) then {float(dts):.6f} s "
                    f"({file.name})"
                )
            last[kind] = (dts, file.name)
            counts[kind] = counts.get(kind, 0) + 1
    return counts
