import io
import json
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import LocalProtocolError
from relay.rtmp import amf0, flv
from tests.unit.rtmp.encoded import CHANNELS, HEIGHT, SAMPLE_RATE, WIDTH, encode, metadata

SPS = bytes.fromhex("6764001eacd940a02ff961000003000100000300320f162d96")
PPS = bytes.fromhex("68ef8fcb")


def test_avc_tags() -> None:
    head = flv.avc_sequence_header(SPS, PPS)
    assert head[:5] == b"\x17\x00\x00\x00\x00"
    assert head[5:11] == bytes([1, 0x64, 0x00, 0x1E, 0xFF, 0xE1])
    assert head[11:13] == len(SPS).to_bytes(2, "big") and head[13:13 + len(SPS)] == SPS
    frame = (b"\x09\xf0", SPS, PPS, b"\x06sei", b"\x65idr")
    body = flv.avc_nalus(frame, True, 80)
    # AUD and parameter sets dropped; SEI and the slice kept with 4-byte lengths.
    assert body == b"\x17\x01\x00\x00\x50" + b"\x00\x00\x00\x04\x06sei\x00\x00\x00\x04\x65idr"
    assert flv.avc_nalus((b"\x41p",), False, -40)[:5] == b"\x27\x01\xff\xff\xd8"
    assert flv.avc_end_of_sequence() == b"\x17\x02\x00\x00\x00"
    with pytest.raises(LocalProtocolError):
        flv.avc_nalus((b"\x41p",), False, 1 << 23)


@given(st.lists(st.tuples(st.integers(0, 31), st.binary(max_size=40)), max_size=8),
       st.booleans())
def test_coded_frames_are_the_nal_units_length_prefixed(units: list[tuple[int, bytes]],
                                                        hevc: bool) -> None:
    """Each NAL unit of the tuple behind a 4-byte length, in order, once; parameter sets,
    AUDs and filler left to the sequence header."""
    if hevc:
        nals = tuple(bytes((kind << 1, 1)) + body for kind, body in units)
        body = flv.hevc_coded_frames(nals, False, 0)[5:]  # ExVideoTagHeader + FourCC
        kept = [n for n in nals if (n[0] >> 1) not in (32, 33, 34, 35, 38)]
    else:
        nals = tuple(bytes((0x60 | kind,)) + body for kind, body in units)
        body = flv.avc_nalus(nals, False, 0)[5:]  # flags, AVCPacketType, composition time
        kept = [n for n in nals if n[0] & 0x1F not in (7, 8, 9, 12)]
    got, offset = [], 0
    while offset < len(body):
        size = int.from_bytes(body[offset : offset + 4], "big")
        got.append(body[offset + 4 : offset + 4 + size])
        offset += 4 + size
    assert got == kept and offset == len(body)


def test_aac_tags() -> None:
    assert flv.aac_sequence_header(b"\x11\x90") == b"\xaf\x00\x11\x90"
    assert flv.aac_raw(b"raw") == b"\xaf\x01raw"
    with pytest.raises(LocalProtocolError):
        flv.aac_sequence_header(b"")


def test_hevc_enhanced_tags() -> None:
    assert flv.hevc_sequence_start(b"HVCC") == b"\x90hvc1HVCC"
    frame = (b"\x46\x01\x50", b"\x40\x01vps", b"\x26\x01idr")  # AUD, VPS, IDR_W_RADL
    assert flv.hevc_coded_frames(frame, True, 0) == b"\x93hvc1\x00\x00\x00\x05\x26\x01idr"
    assert flv.hevc_coded_frames((b"\x02\x01b",), False, 40) == (
        b"\xa1hvc1\x00\x00\x28\x00\x00\x00\x03\x02\x01b"
    )
    assert flv.hevc_sequence_end() == b"\x92hvc1"


def test_metadata() -> None:
    props = metadata()
    assert props == {"width": 640.0, "height": 360.0, "framerate": 25.0, "videocodecid": 7.0,
                     "audiocodecid": 10.0, "audiosamplerate": 48000.0, "audiochannels": 2.0,
                     "stereo": True}
    assert flv.metadata(videocodecid="hvc1")["videocodecid"] == float(0x68766331)


def write_flv(path: Path, seconds: float) -> None:
    tags, _, _ = encode(seconds)
    with path.open("wb") as out:
        writer = flv.FlvFileWriter(out)
        writer.write_tag(flv.TAG_SCRIPT, 0, amf0.encode("onMetaData", amf0.EcmaArray(metadata())))
        for tag in tags:
            writer.write_tag(tag.kind, tag.timestamp_ms, tag.body)


def test_flv_file_layout() -> None:
    out = io.BytesIO()
    writer = flv.FlvFileWriter(out)
    writer.write_tag(flv.TAG_AUDIO, 0x01020304, b"ab")
    assert out.getvalue() == (
        b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
        + b"\x08\x00\x00\x02\x02\x03\x04\x01\x00\x00\x00ab" + (13).to_bytes(4, "big")
    )


def test_ffmpeg_demuxes_and_decodes_our_tags(tmp_path: Path) -> None:
    path = tmp_path / "out.flv"
    write_flv(path, 2.0)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, text=True).stdout)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (WIDTH, HEIGHT)
    assert streams["audio"]["codec_name"] == "aac"
    assert int(streams["audio"]["sample_rate"]) == SAMPLE_RATE
    assert streams["audio"]["channels"] == CHANNELS

    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        decoded_video = decoded_audio = 0
        pts: list[int] = []
        for packet in container.demux():
            for frame in packet.decode():
                if packet.stream is vstream:
                    decoded_video += 1
                    pts.append(frame.pts)
                    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
                else:
                    decoded_audio += 1
    assert decoded_video == 50
    assert decoded_audio >= 90  # 2 s of 1024-sample frames at 48 kHz is 93.75
    # Composition times were applied: pictures come out in presentation order, 40 ms apart.
    assert [b - a for a, b in zip(pts, pts[1:])] == [40] * 49
