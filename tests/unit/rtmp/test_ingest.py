"""Ingest preflight: services are recognised by host and each broken rule is named."""

from relay.media import Codec
from relay.rtmp.ingest import GENERIC, RULES, Observed, check, check_enhanced_rtmp, rules_for

GOOD = Observed(Codec.H264, Codec.AAC, 48000, 2.0, 4_000_000, 1080)


def test_rules_by_host() -> None:
    assert rules_for("a.rtmp.youtube.com") is RULES["youtube"]
    assert rules_for("live.twitch.tv") is RULES["twitch"]
    assert rules_for("ingest.contribute.live-video.net") is RULES["twitch"]
    assert rules_for("live-api-s.facebook.com") is RULES["facebook"]
    assert rules_for("notyoutube.com") is GENERIC
    assert rules_for("127.0.0.1") is GENERIC


def test_a_good_stream_passes_everywhere() -> None:
    for rules in (*RULES.values(), GENERIC):
        assert check(rules, GOOD) == []


def test_each_broken_rule_is_named() -> None:
    bad = Observed(Codec.H265, None, None, 6.0, 12_000_000, 1440)
    problems = check(RULES["twitch"], bad)
    assert any("hevc" in p for p in problems)
    assert any("keyframe interval 6.0 s" in p for p in problems)
    assert any("audio track" in p for p in problems)
    assert any("12.0 Mbit/s" in p for p in problems)
    assert any("1440p" in p for p in problems)


def test_audio_rules() -> None:
    problems = check(RULES["youtube"], Observed(Codec.H264, Codec.AAC, 32000, 2.0))
    assert problems == ["audio sample rate 32000 Hz: YouTube takes 44100 Hz or 48000 Hz"]
    assert check(GENERIC, Observed(Codec.H264, Codec.PCMA, 8000, 1.0)) == [
        "RTMP carries AAC audio; the stream's audio is pcm_alaw"
    ]


def test_h265_to_a_server_without_enhanced_rtmp() -> None:
    (problem,) = check_enhanced_rtmp(Codec.H265, None)
    assert "no Enhanced RTMP (no fourCcList" in problem and "H.265" in problem
    (problem,) = check_enhanced_rtmp(Codec.H265, frozenset({"av01", "vp09", "x" * 100}))
    assert "('av01', 'vp09', 'xxxx')" in problem and "hvc1" in problem
    assert check_enhanced_rtmp(Codec.H265, frozenset({"hvc1"})) == []
    assert check_enhanced_rtmp(Codec.H265, frozenset({"*"})) == []
    assert check_enhanced_rtmp(Codec.H264, None) == []
    assert check_enhanced_rtmp(None, None) == []
