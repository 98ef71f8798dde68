"""Encoding name -> depacketizer."""

import pytest

from relay.errors import UnsupportedError
from relay.media import Codec
from relay.rtp.aac import AacDepacketizer
from relay.rtp.h264 import H264Depacketizer
from relay.rtp.registry import make_depacketizer, supported_encodings


def test_known_encodings_any_case() -> None:
    video = make_depacketizer(0, "h264", 90000, 1, {"packetization-mode": "1"})
    assert isinstance(video, H264Depacketizer) and video.track.codec is Codec.H264
    audio = make_depacketizer(1, "MPEG4-GENERIC", 44100, 2, {"mode": "AAC-hbr", "config": "1210"})
    assert isinstance(audio, AacDepacketizer)
    assert (audio.track.index, audio.track.sample_rate, audio.track.clock_rate) == (1, 44100, 44100)
    assert audio.dropped == 0 and audio.push is not None
    assert set(supported_encodings()) == {
        "H264", "H265", "MPEG4-GENERIC", "MP4A-LATM", "PCMA", "PCMU"
    }


def test_unknown_encoding() -> None:
    with pytest.raises(UnsupportedError, match="codec VP8 is not supported"):
        make_depacketizer(0, "VP8", 90000, 1, {})
