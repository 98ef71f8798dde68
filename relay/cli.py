"""The command line (DESIGN.md): ``relay pull``, ``relay run``, ``relay demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from relay.audio.policy import AudioPolicy
from relay.config import (
    Config,
    ServerConfig,
    SourceUrl,
    StreamConfig,
    check_name,
    check_segment_seconds,
    load_config,
    parse_hostport,
)
from relay.errors import ConfigError
from relay.logs import setup_logging
from relay.rtmp.url import RtmpUrl

log = logging.getLogger("relay")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="Relay RTSP cameras to HLS (and RTMP)."
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="one line per event: key=value text or JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, segment_default: float) -> None:
        sub.add_argument("--hls-dir", default="./hls", help="where HLS files go (default ./hls)")
        sub.add_argument("--segment-seconds", type=float, default=segment_default,
                         help=f"HLS segment target (default {segment_default:g})")
        sub.add_argument("--http", default="127.0.0.1:8080",
                         help="HOST:PORT for the page, HLS and API (default 127.0.0.1:8080)")

    pull = commands.add_parser("pull", help="relay one RTSP source")
    pull.add_argument("source", metavar="SOURCE_URL", help="rtsp://[user:pass@]host[:port]/path")
    pull.add_argument("--name", required=True, help="stream name (letters, digits, - and _)")
    pull.add_argument("--rtmp", action="append", default=[], metavar="URL",
                      help="RTMP destination (repeatable)")
    pull.add_argument("--transport", choices=("tcp", "udp", "auto"), default="auto",
                      help="RTP transport (auto: UDP, falling back to TCP)")
    pull.add_argument("--audio", choices=[p.value for p in AudioPolicy], default="auto",
                      help="audio policy (auto: AAC kept, other audio transcoded to AAC, "
                           "silent AAC for RTMP when the source has none)")
    common(pull, 10.0)

    run = commands.add_parser("run", help="relay every stream of a config file")
    run.add_argument("--config", required=True, type=Path, help="relay.toml")

    demo = commands.add_parser("demo", help="built-in test camera -> relay -> browser")
    common(demo, 2.0)
    return parser


def _config(args: argparse.Namespace) -> Config:
    if args.command == "run":
        return load_config(args.config)
    server = ServerConfig(
        http=parse_hostport(args.http, "--http"), hls_dir=Path(args.hls_dir)
    )
    if args.command == "demo":
        return Config(server=server, streams=())
    return Config(
        server=server,
        streams=(
            StreamConfig(
                name=check_name(args.name, "--name"),
                source=SourceUrl.parse(args.source, "SOURCE_URL"),
                transport=args.transport,
                segment_seconds=check_segment_seconds(args.segment_seconds, "--segment-seconds"),
                rtmp=tuple(RtmpUrl.parse(url) for url in args.rtmp),
                audio=AudioPolicy(args.audio),
            ),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_format, args.verbose)
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    from relay.app import run

    if args.command == "demo":
        try:
            segment = check_segment_seconds(args.segment_seconds, "--segment-seconds")
        except ConfigError as exc:
            print(f"relay: {exc}", file=sys.stderr)
            return 2
        run(config, demo_segment_seconds=segment)
    else:
        run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
