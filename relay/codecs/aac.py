"""AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1, GASpecificConfig 4.4.1).

Parsing keeps the original bytes: ``bytes(config)`` returns them unchanged so extensions the
parser skips (SBR/PS signalling, program config elements) reach muxers intact. A config built
in code is written out from its fields.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from relay.codecs.bits import BitReader, BitWriter
from relay.errors import RemoteProtocolError

SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
# channelConfiguration -> channel count (ISO/IEC 14496-3 Table 1.19, with the 2013 additions)
CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
_CHANNEL_CONFIG = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 7: 11, 24: 13}
# object types whose config continues with GASpecificConfig (frameLengthFlag first)
GA_OBJECT_TYPES = frozenset((1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23))
SBR, PS = 5, 29
MAX_CONFIG_SIZE = 256

AAC_LC = 2

__all__ = ["AAC_LC", "AudioSpecificConfig"]


def _read_object_type(r: BitReader) -> int:
    object_type = r.u(5)
    if object_type == 31:
        object_type = 32 + r.u(6)
    return object_type


def _read_sample_rate(r: BitReader) -> int:
    index = r.u(4)
    if index == 15:
        return r.u(24)
    if index >= len(SAMPLE_RATES):
        raise RemoteProtocolError(f"AAC config: reserved sampling frequency index {index}")
    return SAMPLE_RATES[index]


@dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    """The decoder configuration of an MPEG-4 audio stream.

    Attributes:
        object_type: audioObjectType (2 = AAC-LC; 5 = SBR and 29 = PS signal HE-AAC explicitly).
        sample_rate: samplingFrequency of the core coder in Hz.
        channels: channel count, 0 when a program config element defines them.
        frame_length: samples per access unit: 1024, or 960 when frameLengthFlag is set.
        extension_sample_rate: output rate of explicitly signalled SBR, 0 otherwise.
        raw: the bytes this config was parsed from (``b""`` when built in code).
    """

    object_type: int
    sample_rate: int
    channels: int
    frame_length: int = 1024
    extension_sample_rate: int = 0
    raw: bytes = field(default=b"", compare=False, repr=False)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> AudioSpecificConfig:
        """Parses an AudioSpecificConfig.

        Raises:
            RemoteProtocolError: empty, oversized, truncated or reserved values.
        """
        if not data or len(data) > MAX_CONFIG_SIZE:
            raise RemoteProtocolError(f"AAC config: {len(data)} bytes")
        r = BitReader(data, "AAC config")
        object_type = _read_object_type(r)
        if object_type == 0:
            raise RemoteProtocolError("AAC config: null object type")
        sample_rate = _read_sample_rate(r)
        if sample_rate == 0:
            raise RemoteProtocolError("AAC config: sample rate 0")
        channel_config = r.u(4)
        extension_sample_rate = 0
        core_type = object_type
        if object_type in (SBR, PS):
            extension_sample_rate = _read_sample_rate(r)
            core_type = _read_object_type(r)
        frame_length = 1024
        if core_type in GA_OBJECT_TYPES:
            frame_length = 960 if r.flag() else 1024
        return cls(
            object_type=object_type,
            sample_rate=sample_rate,
            channels=CHANNELS.get(channel_config, 0),
            frame_length=frame_length,
            extension_sample_rate=extension_sample_rate,
            raw=bytes(data),
        )

    @classmethod
    def from_hex(cls, text: str) -> AudioSpecificConfig:
        """Parses the hex form found in SDP ``config=`` (RFC 3640 4.1).

        Raises:
            RemoteProtocolError: not hex, or not a valid config.
        """
        if len(text) > 2 * MAX_CONFIG_SIZE:
            raise RemoteProtocolError("AAC config: hex string too long")
        try:
            data = binascii.unhexlify(text.strip())
        except (binascii.Error, ValueError) as exc:
            raise RemoteProtocolError(f"AAC config: not hex: {text[:40]!r}") from exc
        return cls.parse(data)

    def hex(self) -> str:
        return bytes(self).hex()

    def __bytes__(self) -> bytes:
        if self.raw:
            return self.raw
        w = BitWriter()
        if self.object_type >= 32:
            w.u(5, 31)
            w.u(6, self.object_type - 32)
        else:
            w.u(5, self.object_type)
        _write_sample_rate(w, self.sample_rate)
        w.u(4, _CHANNEL_CONFIG.get(self.channels, 0))
        core_type = self.object_type
        if self.object_type in (SBR, PS):
            _write_sample_rate(w, self.extension_sample_rate)
            w.u(5, AAC_LC)
            core_type = AAC_LC
        if core_type in GA_OBJECT_TYPES:
            w.u(1, 1 if self.frame_length == 960 else 0)
            w.u(2, 0)  # dependsOnCoreCoder, extensionFlag
        return bytes(w)


def _write_sample_rate(w: BitWriter, rate: int) -> None:
    if rate in SAMPLE_RATES:
        w.u(4, SAMPLE_RATES.index(rate))
    else:
        w.u(4, 15)
        w.u(24, rate)
