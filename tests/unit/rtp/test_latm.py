"""MP4A-LATM over RTP (RFC 6416; StreamMuxConfig and AudioMuxElement, ISO/IEC 14496-3 1.7.3):
configs and elements written bit by bit from the syntax tables, a stream captured from
GStreamer's rtpmp4apay, round trips and fuzz."""

import base64
import math
import re
from dataclasses import replace

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec
from relay.rtp import latm
from relay.rtp.latm import LatmDepacketizer, LatmPacketizer, StreamMuxConfig, latm_track
from relay.rtp.packet import RtpPacket
from tests.unit.rtp.sequenced import check_of, push_sequenced

from ..memory import memory_bounded, transient_at_most


def bits(text: str) -> bytes:
    """Bytes from a string of 0/1 digits (spaces ignored), zero-padded to an octet."""
    digits = text.replace(" ", "")
    pad = -len(digits) % 8
    return (int(digits + "0" * pad, 2)).to_bytes((len(digits) + pad) // 8, "big")


def packet(payload: bytes, seq: int = 1, ts: int = 1000, marker: bool = True) -> RtpPacket:
    return RtpPacket(marker, 96, seq, ts, 0x1234, payload)


ASC_LC_44K_STEREO = "00010 0100 0010 0 0 0"  # AAC-LC, index 4 (44100), 2 channels, GASpecific
# audioMuxVersion 0, allStreamsSameTimeFraming 1, numSubFrames 0, numProgram 0, numLayer 0,
# ASC, frameLengthType 0, latmBufferFullness 0xFF, otherDataPresent 0, crcCheckPresent 0
CONFIG_V0 = bits("0 1 000000 0000 000" + ASC_LC_44K_STEREO + "000 11111111 0 0")
# audioMuxVersion 1, audioMuxVersionA 0, taraBufferFullness (LatmGetValue 1 byte) 0xFF,
# numSubFrames 2, ascLen 16, ASC AAC-LC 48000 mono, latmBufferFullness 0xC0,
# otherDataLenBits 8 (LatmGetValue), crcCheckSum 0xAA
CONFIG_V1 = bits(
    "1 0 00 11111111 1 000010 0000 000 00 00010000 00010 0011 0001 0 0 0"
    " 000 11000000 1 00 00001000 1 10101010"
)

# GStreamer 1.22: audiotestsrc freq=1000 ! 48 kHz stereo ! avenc_aac ! rtpmp4apay mtu=200 !
# rtpstreampay (RFC 4571 length prefixes); its caps said cpresent=0, config=40002320adca00
GST_CONFIG = "40002320adca00"
GST_STREAM = base64.b64decode(
    "AMiAYEXE5RS/bdyOGML/It4CAExhdmM1OS4zNy4xMDAAQlUpq3VAh6l+368/PtqvU38XxXBZkmSSTke0EA+pfUUyXtbz"
    "m2sRTJaepnpLsHpLvGMqdzF9D9qINfLINLSyT/5wHWXEc9YrT3MOzte5q2HKsjiuw+C6rxXGeC2nOs5xWRxWRs3A51nO"
    "SxOSxOSstmstmrs9XZKRkmLJiyYsmLJiyYsmLJiyYsmLJiyYsmLIUYUYUYUYUYUYUYUYUYUYUYUYUYUYUYUYUQBzgOBF"
    "xeUUv23cjhjChRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRhRp555555555555555555555555qU2OWGjw6l+"
    "368/PtqvU38XxXBZkmSSTke0EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHADIgGBFxuUUw2zcjhjC/54hTG1Wrt1qqyJ3"
    "YaS82f1//HzDc1Nav2/j49viBL3/+H/uBepn/j/Ni71cC7fdjsxnGZMkEzC8llCf+mIliEYCKHBb1enCa5PKPIIe3pOG"
    "jbxD6e+yqN5p4+44L4LjPJaOFXYGpQKbjWU2KdWriSkqYUaOatlMkzpXTW2OGOAoKCjs7O2MjOzxRRTzz/T6fSICecfT"
    "6fQgBOoD6fT6a5ccTyOEImqZA5WSmUyON4IRQLo+tpUEJlfpkhgAyIBgRcflFMNs3I4YwmDRcEmGfUCiV6MRcaXCb7nc"
    "P/bHw/su7Nt0rX3dWjfw79bG6uqsZX8vZ3W1ixiSpMpFLGqaqaSUE6KSImmWmZZZQYGBv1kJCZZZQYGJBISEyyygwMDa"
    "JCQmWWWUGJXrwSEhITMlMnwnZEbs6X33ZWmdMuE33uzbdAv7ZVtWiSaSaSaSaSaRpJpJpGkmkZ2dnZ2FJSy93Wppv1cl"
    "mvdyb7f/H+PMt66mtX1/Hx7fEAf/H/sAOP/H+bF2AAAAADOA4EXI5RTDbNyOGMIAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAA4AyIBgRcnlFMds3I4Ywv8hIXqUVcqVoWDrHfPCud13/T/r17ZxHFSLyXT9lySSSJBIvnOk"
    "eybZtntXi2YZxuL+99yycD8F/y/zf/2xu68PoJp48SKQkMWPgfxiRh4+D81hVJ9I/6SIAfnfXeLZhmk3cbetfnvyXNWF"
    "PMRxHYuxdG/0eFWYbsX5r770bjVaLkc56r1nquUxpElnXHurcayqODY2XOdpxM6pAksVtW1bVYlQbGRnZ2dakoGm0lPT"
    "zYpEy1kZ1qpJQZSUAHKA4EXK5RTHbNyOGML09PNikTLWdatVJKAzJs2bGgkRSrw7vJhg5044444tC2GSWmWGJgiHWP0y"
    "7zndc/p/nXxnRxVXmpNybgEkkkiQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMMMMJHBqcccWYA4AyIBgRcvlFMtt"
    "3I4Ywv8rIRoTzdKMxdQQXHes3b1/4/4//8fVy61dLkybjk9pJEnQgsGzDmKCwbMOYrZzFPNtdk/Uv1pIANi91G/YeGkG"
    "iaCqye+WGDfffs3zPeX2X5r13urvHuri3i713uruni7RuLYri3FvF3FujtG6O7p4u4t4u2Lo7FcWxW2rZprKcqynFYnF"
    "cZ41tO1bTlWU5VtO1bTlWU5VlOVbTtWU5VlOVZTlWJxU7PTsdGx0bHRsdOz0bHRsdGx0bHNWAHyA4EXM5RTLbdyOGMLY"
    "Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Y4Yuzs7Ozs7Ozs7Ozs7Ozs7O0UUUUUUUTzJ7PLDLqPC471m7ev/H/H//"
    "j6uXWrpcmTccntJIkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADgAMiAYEXN5RTPbNyOGML/SyEak23KmkPUO67k"
    "3zX/j/X//37XdOFarjuVJkbpAUID8F/B0Vq3XXBZK5DpTnvviUwciSeDoTz+TAT+JlPjJQSRFJjkomEaxJFHz4Kfw+ed"
    "Tz4Hz/qTkeTAef9Scj7k13rDM+ZLjuC4+hOh9ycH1hrPuHO+cc75xs+aavqmDwGD5xzvZNn2TZ9U1fAYPAYPAYPuHO+c"
    "c75xzvnGzwEHAQcBBwEHAQcBBwEHAQcBBwEGkTpE6ROkTpE6RACcgOBFzuUUz2zcjhjC6ROkTpE6ROkTpE6ROkTpE6RO"
    "kTpE6ROIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIOIO88888888888888888888888822GSWqWmbUO67k3"
    "zX/j/X//37XdOFarjuVJkbpAUIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABwAMiAYEXP5RTTbNyO"
    "GML/QyEak12+oIPUPGVmVvf/b/p//4+JqrkOJVeIkncQMhA/bVKC8tQ5K1Jm/aGc+KNh8Q6z7k6z9o679oNs8Ox8Cmv4"
    "ugKGS3HIFBioAPs/cns/ZnL/WEzg9k7P5c9j7Z2/lnsfsHb+2ex9s7f0Tl/LO38s5fyzW9Y1vWND0DQ9A0O0Wu0Wu0dv"
    "7Z0flnL+Wcv1jo/ROX8s5fyzW9Y0PQND0DQ9Audotdop6SnpKekp6SnpCyCyCyCyCyCyCwCUgOBF0OUU02zcjhjCILIL"
    "ILILILILILILILILILILILILILILILILILILILILILILILILILILILILILILILILILImmmmmmmmmmmmmmmmmmmmmPTTN"
    "dhktplRp1DxlZlb3/2/6f/+Piaq5DiVXiJJ3EDIQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOADIgGBF"
    "0eUU123cjhjC/0QhGhOF2ozE05BZ3rvfGc/+n/T//x+Lq2oSQlb5R/SRJwP1v67tX6lbNtdq/UrZzFPNtfnf8360kAH5"
    "3+0bgoOGkGiaCqye+WGDY9DgQP7P7bHof7X7X793j3Vxbxd673V3Txdxbo7RujvXe6u6eyuLeLu6eLuLeLti6O0bo7Ru"
    "YsVxbFcWtm2rZprFcWtm2rZpqmaa2natpyrKcqynKtp2rKcqynKspyrE4rE4rE4qw2Kw2Kw2Kwz07PQAlYDgRdLlFNdt"
    "3I4Ywuz07PTs9Oz07PTs9Oz07PTs9OxzVs1bNWzVs1bNWzVthjhjhjhjhjhjhi7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7O"
    "ztFFFFFFFE4WGS2iXGTT+Fneu98Zz/6f9P//H4urahJCVvlH9JEgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AADgAMiAYEXT5RTbbNyOGML/WCEak23iDkPUPCmb5r/x/f//z7aXJdLtzKmRukBQgPwX8HDs8664Lz1/380ncHfEpg5E"
    "k8HQnn8mAn8TKfGSY0iSdRpRMI1iSKPnwU/h886nnwc/hkwHn/UnI/Qm5+pOR+ROh+ROh+hNz9CdD7k4PrDWfInQ/Qm5"
    "+CcHzJmfMlx3BcdwXHRlH0ZR+ZMz3BcdwXHcFx6wzPmTM+ZMz5kuO4LjuC47guO4KPoyj7CzsLOws7CzsLOws7CzsACp"
    "gOBF1OUU22zcjhjCs7CzsLOws5EuRLkS5EuRLkS5EuRLkS5EuRLkS5EtBNBNBNBNBNBNBNBNBNBNBNBNBNBNBNBNBNBN"
    "BNBNBNBNBN555555555555555555555555tucpM2oeFM3zX/j+///n20uS6XbmVMjdIChAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOADIgGBF1eUU32zcjhjC/5whGpS9vpkF0NDYWkfbjxouq/b/S5U7"
    "6ut6uod+3jz3B+N8cogdlcwsTDEo5UlGFQnTtPrzI/BOR+PJ/BUArrN/2JDBMbkyGa6BW+D2y6wflPb/RPb/RPT/EN/6"
    "81/nzwfgPB8ok5CTkOD4Dg+A4PgOV8o5XyjlfKM7zjO84zvOJOQk5CTkLPZLPZLPZLPZM7zjO84zvOM7ziz2Sz2Sz2Sz"
    "2Sz2TF2Sz2Sz2Sz2Sz2Sz2Sz2Sz2Sz2Sz2QAyIBgRdblFN9s3I4Ywp+cn5yfnJ+cn5yfnJ+cbYbYbYbYbYbYbY4fA4fA"
    "4fA4fA4fA4fA4fAbYbYbYbYbYbYbYbY2+02+02+02+02+02+02+02+0bYbYbYbYbYbYbYbYbtG7Ru0btG7Ru0btG7Q2Y"
    "NmDZg2YNmDZg2YNmG7Ru0btG7Ru0btG7Ru0yzyzyzyzyzyzyzyzyzyzyzyzyzyzyzyzl5PZ5loVGYtI+3HjRdV+3+lyp"
    "31db1dQ79vHnuD8b45RAAAAAAAAAADGA4EXX5RTfbNyOGMIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAA4"
)


def gst_packets() -> list[RtpPacket]:
    out, pos = [], 0
    while pos < len(GST_STREAM):
        size = int.from_bytes(GST_STREAM[pos : pos + 2], "big")
        out.append(RtpPacket.parse(GST_STREAM[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return out


def test_config_version_0_from_the_syntax_table() -> None:
    config = StreamMuxConfig.parse(CONFIG_V0)
    assert config == StreamMuxConfig(0, 0, bits(ASC_LC_44K_STEREO), 0xFF, 0, None)
    assert (config.asc.sample_rate, config.asc.channels, config.asc.object_type) == (44100, 2, 2)
    assert bytes(config) == CONFIG_V0
    assert StreamMuxConfig.from_hex(CONFIG_V0.hex()) == config


def test_config_version_1_with_other_data_and_crc() -> None:
    config = StreamMuxConfig.parse(CONFIG_V1)
    assert config.audio_mux_version == 1 and config.num_sub_frames == 2
    assert config.audio_config == bits("00010 0011 0001 000")
    assert (config.asc.sample_rate, config.asc.channels) == (48000, 1)
    assert (config.latm_buffer_fullness, config.other_data_bits, config.crc) == (0xC0, 8, 0xAA)
    assert config.tara_buffer_fullness == 0xFF
    assert bytes(config) == CONFIG_V1


def test_escaped_other_data_length_version_0() -> None:
    other = "1 1 00000001 0 00000000"  # otherDataLenBits 1 * 256 + 0, escape-coded
    data = bits("0 1 000000 0000 000" + ASC_LC_44K_STEREO + "000 11111111 " + other + " 0")
    assert StreamMuxConfig.parse(data).other_data_bits == 256
    assert bytes(StreamMuxConfig.parse(data)) == data


def test_gstreamer_config_carries_the_sync_extension_and_stops_short() -> None:
    # the whole 5-byte ASC of FFmpeg's encoder (with the 0x2b7 SBR signalling), then nothing
    config = StreamMuxConfig.from_hex(GST_CONFIG)
    assert config.audio_config == bytes.fromhex("119056e500")
    assert (config.num_sub_frames, config.other_data_bits, config.crc) == (0, 0, None)
    assert StreamMuxConfig.parse(bytes(config)) == config


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", RemoteProtocolError),
        (bits("0 1 000000 0001 000" + ASC_LC_44K_STEREO + "000 11111111 0 0"), UnsupportedError),
        (bits("0 1 000000 0000 001" + ASC_LC_44K_STEREO + "000 11111111 0 0"), UnsupportedError),
        (bits("0 0 000000 0000 000" + ASC_LC_44K_STEREO + "000 11111111 0 0"), UnsupportedError),
        (bits("1 1"), UnsupportedError),
        (bits("0 1 000000 0000 000" + ASC_LC_44K_STEREO + "001 000000000 0 0"), UnsupportedError),
        (bits("0 1 000000 0000 000 00010 0100 0000 0 0 0 000 11111111 0 0"), UnsupportedError),
        (bits("0 1 000000 0000 000 01000 0100 0001 000 11111111 0 0"), UnsupportedError),  # CELP
        (bits("0 1 000000 0000 000 00010 1101 0010 0 0 0"), RemoteProtocolError),  # index 13
        (bits("1 0 00 11111111 1 000000 0000 000 00 00000000"), RemoteProtocolError),  # ascLen 0
        (bits("0 1 0000"), RemoteProtocolError),
    ],
)
def test_bad_configs(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        StreamMuxConfig.parse(data)


def test_not_hex() -> None:
    with pytest.raises(RemoteProtocolError, match="not hex"):
        StreamMuxConfig.from_hex("40zz")


def make_v0(num_sub_frames: int = 0, other: str = "0") -> StreamMuxConfig:
    return StreamMuxConfig.parse(
        bits(f"0 1 {num_sub_frames:06b} 0000 000" + ASC_LC_44K_STEREO + f"000 11111111 {other} 0")
    )


def test_depacketize_one_unit_per_packet() -> None:
    dep = latm.make(2, 44100, 2, {"cpresent": "0", "config": CONFIG_V0.hex()})
    assert dep.track.codec is Codec.AAC and dep.track.index == 2
    assert dep.track.audio_config == bits(ASC_LC_44K_STEREO)
    assert (dep.track.clock_rate, dep.track.sample_rate, dep.track.channels) == (44100, 44100, 2)
    au = bytes(range(150)) * 2
    [frame] = dep.push(packet(b"\xff\x2d" + au, ts=0xFFFFFF00))
    assert frame.data == au and frame.pts == frame.dts == 0xFFFFFF00 and frame.key
    [frame] = dep.push(packet(b"\xff\x00" + au[:255], seq=2))
    assert frame.data == au[:255]
    [frame] = dep.push(packet(b"\xff\xff\x00" + bytes(510), seq=3))
    assert len(frame.data) == 510 and dep.dropped == 0


def test_sub_frames_and_concatenated_elements_follow_one_frame_apart() -> None:
    config = make_v0(num_sub_frames=2)
    dep = LatmDepacketizer(latm_track(0, 90000, 2, config), config, False)
    element = b"\x01a\x02bb\x03ccc"
    frames = dep.push(packet(element + element, ts=0xFFFFFFFF))
    assert [f.data for f in frames] == [b"a", b"bb", b"ccc"] * 2
    step = 1024 * 90000 / 44100
    expected = [(0xFFFFFFFF + round(i * step)) & 0xFFFFFFFF for i in range(6)]
    assert [f.pts for f in frames] == expected


def test_other_data_is_skipped() -> None:
    config = make_v0(other="1 0 00001100")  # 12 bits of other data: 2 octets after ByteAlign
    assert config.other_data_bits == 12
    dep = LatmDepacketizer(latm_track(0, 44100, 2, config), config, False)
    assert [f.data for f in dep.push(packet(b"\x02hi\xab\xc0"))] == [b"hi"]
    assert dep.push(packet(b"\x02hi\xab", seq=2)) == [] and dep.bad == 1  # other data past the end


@pytest.mark.parametrize(
    "payload",
    [b"\x05abc", b"\xff", b"\x00", b"\x03abc\x04", b"\xff\xff"],
)
def test_malformed_elements(payload: bytes) -> None:
    dep = latm.make(0, 44100, 2, {"config": CONFIG_V0.hex()})
    assert dep.push(packet(payload)) == [] and dep.bad == 1


def test_fragments_are_joined_and_a_lost_middle_drops_the_element() -> None:
    dep = latm.make(0, 44100, 2, {"cpresent": "0", "config": CONFIG_V0.hex()})
    au = bytes(range(256)) * 3
    element = b"\xff\xff\xff\x03" + au
    parts = [element[:300], element[300:600], element[600:]]
    assert push_sequenced(dep, [packet(parts[0], 1, 500, False)]) == []
    assert push_sequenced(dep, [packet(parts[1], 2, 500, False)]) == []
    [frame] = push_sequenced(dep, [packet(parts[2], 3, 500, True)])
    assert frame.data == au and frame.pts == 500
    # packet 5 (the middle) is lost: the element is dropped, its tail skipped
    assert push_sequenced(dep, [packet(parts[0], 4, 1524, False)]) == []
    assert push_sequenced(dep, [packet(parts[2], 6, 1524, True)]) == []
    assert dep.dropped == 1
    [frame] = push_sequenced(dep, [packet(b"\x02ok", 7, 2548, True)])
    assert frame.data == b"ok"
    # an element whose marker never came is dropped when the next timestamp starts
    assert push_sequenced(dep, [packet(parts[0], 8, 3572, False)]) == []
    assert [f.data for f in push_sequenced(dep, [packet(b"\x02ok", 9, 4596, True)])] == [b"ok"]
    assert dep.dropped == 2
    # a stale packet is ignored
    assert push_sequenced(dep, [packet(b"\x02ok", 3, 9999, True)]) == [] and check_of(dep).late == 1


def test_oversized_element_is_dropped() -> None:
    dep = latm.make(0, 44100, 2, {"config": CONFIG_V0.hex()})
    chunk = bytes(60000)
    for seq in range(1, 6):
        assert dep.push(packet(chunk, seq, 7, False)) == []
    assert dep.dropped == 1
    assert dep.push(packet(chunk, 6, 7, True)) == []  # the rest of the same element
    assert [f.data for f in dep.push(packet(b"\x01z", 7, 8))] == [b"z"]


ELEMENT_TEMPORARIES = 64 * 1024
"""Temporary bytes reading a 258 KB element may take: a few copies of its largest unit (4 KB),
not of the element."""


def test_large_cpresent_1_element_is_read_in_place() -> None:
    # 64 sub-frames of 4016 bytes after an in-band config, so no unit is byte aligned: 258 KB.
    config = replace(StreamMuxConfig.parse(CONFIG_V0), num_sub_frames=63)
    units = [bytes((i,)) * 4016 for i in range(64)]
    element = latm.audio_mux_element(config, units, mux_config_present=True)
    assert len(element) > 258_000
    dep = latm.make(0, 44100, 2, {"cpresent": "1"})
    big = packet(element)  # one payload: the work measured is the element's, not the joining
    with transient_at_most(ELEMENT_TEMPORARIES):
        frames = dep.push(big)
    assert [f.data for f in frames] == units


@pytest.mark.parametrize("cpresent", [False, True])
def test_many_access_units_in_one_payload_are_refused(cpresent: bool) -> None:
    # 258 KB of one-byte units: 80000 Frames out of one packet before, each a second of work
    # per 10000 of them; now refused once the cap is passed.
    config = StreamMuxConfig.parse(CONFIG_V0)
    dep = LatmDepacketizer(latm_track(0, 44100, 2, config), config, cpresent)
    first = latm.audio_mux_element(config, [b"a"], mux_config_present=cpresent)
    same = latm.audio_mux_element(config, [b"a"], cpresent, send_config=False)
    payload = first + same * (258_000 // len(same))
    split = dep._split_bits if cpresent else dep._split_bytes
    with pytest.raises(RemoteProtocolError, match="MAX_UNITS_PER_PAYLOAD"):
        split(payload)
    assert dep.push(packet(payload)) == [] and dep.bad == 1
    payload = first + same * (latm.MAX_UNITS_PER_PAYLOAD - 1)
    assert [f.data for f in dep.push(packet(payload, seq=2))] == [b"a"] * latm.MAX_UNITS_PER_PAYLOAD


@pytest.mark.parametrize("cpresent", [False, True])
def test_a_run_of_length_octets_past_the_end_stops_early(cpresent: bool) -> None:
    config = StreamMuxConfig.parse(CONFIG_V0)
    dep = LatmDepacketizer(latm_track(0, 44100, 2, config), config, cpresent)
    prefix = bits("1") if cpresent else b""  # useSameStreamMux
    split = dep._split_bits if cpresent else dep._split_bytes
    with pytest.raises(RemoteProtocolError, match="access unit") as error:
        split(prefix + b"\xff" * 100_000)
    assert dep.push(packet(prefix + b"\xff" * 100_000)) == [] and dep.bad == 1
    # the run was read only until the length passed the end, not to the end of the payload
    [length] = re.findall(r"(\d+)[- ]bytes?", str(error.value))
    assert 99_000 < int(length) < 100_000  # about 390 octets of 0xFF read, not 100000


def test_in_band_config_cpresent_1() -> None:
    dep = latm.make(1, 44100, 2, {"cpresent": "1"})
    assert dep.track.audio_config == b"" and dep.config is None
    # useSameStreamMux=1 before any config: nothing to decode with
    assert dep.push(packet(bits("1 00000010") + b"hi")) == [] and dep.dropped == 1
    config_bits = "0 1 000000 0000 000" + ASC_LC_44K_STEREO + "000 11111111 0 0"
    au_bits = " ".join(f"{b:08b}" for b in b"hey")
    frames = dep.push(packet(bits("0 " + config_bits + " 00000011 " + au_bits), seq=2))
    assert [f.data for f in frames] == [b"hey"]
    assert dep.track.audio_config == bits(ASC_LC_44K_STEREO) and frames[0].track is dep.track
    assert dep.track.index == 1 and dep.track.sample_rate == 44100
    first_track = dep.track
    # two elements in one packet, each re-using the config, each byte aligned
    frames = dep.push(packet(bits("1 00000001 01111000") + bits("1 00000001 01111001"), seq=3))
    assert [f.data for f in frames] == [b"x", b"y"] and dep.track is first_track
    # a new config (48 kHz mono) makes a new Track with the same index
    new_config = "0 1 000000 0000 000 00010 0011 0001 0 0 0 000 11111111 0 0"
    frames = dep.push(packet(bits("0 " + new_config + " 00000001 01111010"), seq=4))
    assert frames[0].track.sample_rate == 48000 and frames[0].track.channels == 1
    assert dep.track.index == 1 and dep.track is not first_track
    assert dep.push(packet(bits("0 1 000000 0001 000"), seq=5)) == []  # two programs, in-band
    assert dep.bad == 1


@pytest.mark.parametrize(
    "fmtp, error",
    [
        ({"cpresent": "0"}, RemoteProtocolError),
        ({"cpresent": "2", "config": CONFIG_V0.hex()}, RemoteProtocolError),
        ({"config": "zz"}, RemoteProtocolError),
        ({"config": bits("0 1 000000 0001 000").hex()}, UnsupportedError),
    ],
)
def test_bad_fmtp(fmtp: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        latm.make(0, 44100, 2, fmtp)


def test_config_without_cpresent_means_cpresent_0() -> None:
    dep = latm.make(0, 44100, 2, {"Config": CONFIG_V0.hex(), "profile-level-id": "15"})
    assert not dep.mux_config_present and dep.config == StreamMuxConfig.parse(CONFIG_V0)


def goertzel(samples: list[float], freq: float, rate: int) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return math.sqrt(max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2)) / len(samples)


def test_gstreamer_stream_depacketizes_and_decodes() -> None:
    packets = gst_packets()
    assert sum(not p.marker for p in packets) > 0  # the capture does fragment
    dep = latm.make(0, 48000, 2, {"cpresent": "0", "config": GST_CONFIG})
    frames = [f for p in packets for f in dep.push(p)]
    assert len(frames) == sum(p.marker for p in packets) == 9 and dep.dropped == 0
    assert [f.pts for f in frames] == [p.timestamp for p in packets if p.marker]
    assert len(frames[0].data) == 0xFF + 0x22
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = dep.track.audio_config
    left: list[float] = []
    for frame in frames:
        for audio in decoder.decode(av.Packet(frame.data)):
            assert audio.samples == 1024 and audio.sample_rate == 48000
            plane = memoryview(bytes(audio.planes[0])).cast("f")
            left += plane[: audio.samples].tolist()
    assert len(left) == 9 * 1024
    tail = left[4096:]  # past the encoder's priming
    assert goertzel(tail, 1000, 48000) > 10 * goertzel(tail, 1500, 48000)


configs = st.builds(
    StreamMuxConfig,
    audio_mux_version=st.sampled_from([0, 1]),
    num_sub_frames=st.integers(0, 3),
    audio_config=st.sampled_from(
        [bits(ASC_LC_44K_STEREO)]
        + [bytes.fromhex(h) for h in ("119056e500", "1188", "1590")]
    ),
    latm_buffer_fullness=st.integers(0, 255),
    other_data_bits=st.sampled_from([0, 1, 8, 13, 300]),
    crc=st.none() | st.integers(0, 255),
    tara_buffer_fullness=st.integers(0, 255),
).map(lambda c: c if c.audio_mux_version else replace(c, tara_buffer_fullness=0xFF))


@given(configs)
def test_config_round_trip(config: StreamMuxConfig) -> None:
    assert StreamMuxConfig.parse(bytes(config)) == config


@settings(max_examples=60)
@given(
    config=configs,
    data=st.data(),
    mtu=st.integers(30, 1500),
    cpresent=st.booleans(),
    ts=st.integers(0, 2**32 - 1),
)
def test_packetizer_round_trip(
    config: StreamMuxConfig, data: st.DataObject, mtu: int, cpresent: bool, ts: int
) -> None:
    pay = LatmPacketizer(config, 96, 7, sequence=65530, mtu=mtu, mux_config_present=cpresent)
    dep = LatmDepacketizer(latm_track(0, 48000, 2, None if cpresent else config),
                           None if cpresent else config, cpresent)
    sent: list[bytes] = []
    got = []
    for element in range(3):
        units = data.draw(st.lists(st.binary(min_size=1, max_size=700),
                                   min_size=config.num_sub_frames + 1,
                                   max_size=config.num_sub_frames + 1))
        sent += units
        for p in pay.packetize(units, ts + element * 5000):
            assert len(bytes(p)) <= mtu
            got += dep.push(RtpPacket.parse(bytes(p)))
    assert [f.data for f in got] == sent
    assert dep.track.audio_config == config.audio_config and dep.dropped == 0
    step = 1024 * 48000 / config.asc.sample_rate
    n = config.num_sub_frames + 1
    assert [f.pts for f in got] == [
        (ts + e * 5000 + round(i * step)) & 0xFFFFFFFF for e in range(3) for i in range(n)
    ]


def test_fmtp_for_the_packetizer() -> None:
    config = StreamMuxConfig.parse(CONFIG_V0)
    assert latm.latm_fmtp(config) == f"profile-level-id=30;cpresent=0;config={CONFIG_V0.hex()}"
    params = dict(kv.split("=") for kv in latm.latm_fmtp(config).split(";"))
    assert latm.make(0, 44100, 2, params).config == config


@given(st.binary(max_size=40))
@memory_bounded
def test_fuzz_config(data: bytes) -> None:
    try:
        config = StreamMuxConfig.parse(data)
    except (RemoteProtocolError, UnsupportedError):
        return
    assert config.asc.sample_rate > 0


@given(
    cpresent=st.booleans(),
    packets=st.lists(
        st.tuples(st.booleans(), st.integers(0, 6), st.integers(0, 3), st.binary(max_size=80)),
        max_size=12,
    ),
)
@memory_bounded
def test_fuzz_depacketizer(cpresent: bool, packets: list[tuple[bool, int, int, bytes]]) -> None:
    config = StreamMuxConfig.parse(CONFIG_V0)
    dep = LatmDepacketizer(latm_track(0, 44100, 2, None if cpresent else config),
                           None if cpresent else config, cpresent)
    seq = 0
    for marker, seq_step, ts, payload in packets:
        seq = (seq + seq_step) % 65536
        frames = push_sequenced(dep, [RtpPacket(marker, 96, seq, ts * 1024, 1, payload)])
        assert all(f.data and f.track.codec is Codec.AAC for f in frames)
