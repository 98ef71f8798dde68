"""The command line (DESIGN.md): ``relay pull``, ``relay run``, ``relay demo``, ``relay camera``.

``relay camera`` serves the built-in test camera over RTSP without relaying it, so that it can run
as its own service (docker-compose.yml) and be pulled like any IP camera.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from relay.audio.policy import AudioPolicy
from relay.config import (
    LL_HLS_MODES,
    Config,
    ServerConfig,
    SourceUrl,
    StreamConfig,
    check_hls_dir,
    check_name,
    check_part_seconds,
    check_segment_seconds,
    load_config,
    parse_hostport,
    redact_url,
)
from relay.errors import ConfigError
from relay.logs import FORMATS, setup_logging
from relay.rtmp.url import RtmpUrl
from relay.shards import Assignment, check_workers, parse_shard

if TYPE_CHECKING:
    from relay.drivers.workers import WorkerCommand

log = logging.getLogger("relay")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="Relay RTSP cameras to HLS (and RTMP)."
    )
    def logging_flags(sub: argparse.ArgumentParser, top: bool) -> None:
        # accepted before or after the command; a flag given after it wins
        default = None if top else argparse.SUPPRESS
        sub.add_argument("--log-format", choices=FORMATS, default=default,
                         help="one line per event: key=value text or JSON (run: default from "
                              "[server] log_format, else text)")
        sub.add_argument("-v", "--verbose", action="store_true",
                         default=False if top else argparse.SUPPRESS, help="debug logging")

    logging_flags(parser, top=True)
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
    pull.add_argument("--ll-hls", choices=LL_HLS_MODES, default="on-demand",
                      help="LL-HLS at /hls/NAME/ll.m3u8: while someone reads it (on-demand, the "
                           "default), always, or off")
    pull.add_argument("--part-seconds", type=float, default=0.2,
                      help="LL-HLS part target, 0.1 to 2 (default 0.2)")
    common(pull, 10.0)
    logging_flags(pull, top=False)

    run = commands.add_parser("run", help="relay every stream of a config file",
                              description="Relay every stream of a config file. SIGHUP reloads "
                                          "the file; SIGINT/SIGTERM stop cleanly.")
    run.add_argument("--config", required=True, type=Path, help="relay.toml")
    run.add_argument("--check", action="store_true",
                     help="only check the config file, print a summary and exit")
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                     help="media processes, streams assigned by a stable hash of their name "
                          "(default: the number of cores)")
    run.add_argument("--shard", default="0/1", metavar="I/N",
                     help="run only the streams of shard I of N (N machines splitting one "
                          "config; I may end a pod name: relay-2/4)")
    # a worker of --workers N: started by its parent, never by hand
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--runtime", type=Path, default=None, help=argparse.SUPPRESS)
    run.add_argument("--parent-fd", type=int, default=None, help=argparse.SUPPRESS)
    logging_flags(run, top=False)

    demo = commands.add_parser("demo", help="built-in test camera -> relay -> browser")
    common(demo, 2.0)
    logging_flags(demo, top=False)

    camera = commands.add_parser(
        "camera", help="serve the built-in test camera over RTSP (no relaying)",
        description="Serve the built-in test camera at rtsp://HOST:PORT/demo.")
    camera.add_argument("--listen", default="127.0.0.1:8554",
                        help="HOST:PORT to listen on (default 127.0.0.1:8554; 0.0.0.0:8554 in "
                             "a container)")
    logging_flags(camera, top=False)
    return parser


def _config(args: argparse.Namespace) -> Config:
    if args.command == "run":
        config = load_config(args.config)
        check_hls_dir(config.server.hls_dir, f"{args.config}: server.hls_dir")
        return config
    server = ServerConfig(
        http=parse_hostport(args.http, "--http"),
        hls_dir=check_hls_dir(Path(args.hls_dir), "--hls-dir"),
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
                ll_hls=args.ll_hls,
                part_seconds=check_part_seconds(args.part_seconds, "--part-seconds"),
            ),
        ),
    )


def _summary(config: Config, assignment: Assignment) -> str:
    lines = [f"server: http {config.server.http[0]}:{config.server.http[1]}, hls_dir "
             f"{config.server.hls_dir}, token {'set' if config.server.token else 'none'}"]
    for s in config.streams:
        outputs = (["hls"] if s.hls else []) + [u.redacted for u in s.rtmp]
        if s.hls_push:
            outputs.append(f"push {redact_url(s.hls_push)}")
        state = "" if s.enabled else " (disabled)"
        shard, worker = assignment.place(s.name)
        where = f"shard {shard}/{assignment.shards}, " if assignment.shards > 1 else ""
        lines.append(f"stream {s.name}{state}: {s.source} -> {', '.join(outputs) or 'nothing'} "
                     f"({where}worker {worker}/{assignment.workers})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs = setup_logging(args.log_format or "text", args.verbose,
                         pinned=args.log_format is not None)
    if args.command == "camera":
        try:
            listen = parse_hostport(args.listen, "--listen")
        except ConfigError as exc:
            print(f"relay: {exc}", file=sys.stderr)
            return 2
        from relay.app import run_camera

        try:
            run_camera(listen)
        except OSError as exc:
            print(f"relay: --listen {args.listen}: cannot listen ({exc.strerror or exc})",
                  file=sys.stderr)
            return 1
        return 0
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    assignment = Assignment()
    if args.command == "run":
        try:
            shard, shards = parse_shard(args.shard)
            workers = check_workers(args.workers)
        except ConfigError as exc:
            print(f"relay: {exc}", file=sys.stderr)
            return 2
        assignment = Assignment(shard, shards, args.worker or 0, workers)
        if args.check:
            print(_summary(config, assignment))
            return 0
        logs.use_config_format(config.server.log_format)
        if args.worker is not None:
            if args.runtime is None or args.parent_fd is None:
                print("relay: --worker is started by relay run --workers, with --runtime and "
                      "--parent-fd", file=sys.stderr)
                return 2
            from relay.app import run_worker

            run_worker(config, logs, args.config, assignment, args.runtime, args.parent_fd)
            return 0
    from relay.app import run

    if args.command == "demo":
        try:
            segment = check_segment_seconds(args.segment_seconds, "--segment-seconds")
        except ConfigError as exc:
            print(f"relay: {exc}", file=sys.stderr)
            return 2
        run(config, logs, demo_segment_seconds=segment)
    elif args.command == "run":
        run(config, logs, config_path=args.config, assignment=assignment,
            workers=_workers(args) if assignment.workers > 1 else None)
    else:
        run(config, logs)
    return 0


def _workers(args: argparse.Namespace) -> WorkerCommand:
    """The command line each worker runs: this one's, with its flags (the config path absolute:
    a worker's restart must find the same file)."""
    from relay.drivers.workers import WorkerCommand

    base = [sys.executable, "-m", "relay"]
    if args.log_format is not None:
        base += ["--log-format", args.log_format]
    if args.verbose:
        base.append("--verbose")
    base += ["run", "--config", str(args.config.resolve()), "--workers", str(args.workers),
             "--shard", args.shard]
    return WorkerCommand(args.workers, tuple(base))


if __name__ == "__main__":
    sys.exit(main())
