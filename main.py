"""CityWall: the command-center wall for city management (城市管理指挥中心).

    python main.py --demo                      the wall on the built-in demo city
    python main.py --feed tcp://host:5556      the wall on live feeds
    python main.py --headless --demo --run-for 30 --status-out status.json
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from feeds.args import EXIT_USAGE, OneLineParser, endpoint, positive_float, positive_int, time_ms
from feeds.endpoints import check_endpoint
from feeds.schema import DEFAULT_MAX_RECORD_BYTES

EXIT_FAILURE = 1


def export_file(text: str) -> str:
    """A file to write at exit: its folder must exist now, not only when the run ends."""
    path = Path(text).expanduser()
    if not text or path.name in ("", ".", "..") or path.is_dir():
        raise argparse.ArgumentTypeError(f"not a file name: {text!r}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {str(path.parent)!r} (for {text!r})")
    return str(path)


def write_exports(situation, args) -> int:
    """Write the files ``--export-*`` asked for; one line on stderr and 1 if one failed."""
    if not (args.export_public_map or args.export_open311):
        return 0
    from situation.open311 import write_open311
    from situation.public_map import write_public_map
    code = 0
    for path, write in ((args.export_public_map, write_public_map),
                        (args.export_open311, write_open311)):
        if not path:
            continue
        try:
            write(situation, path, args.lang)
        except OSError as exc:
            print(f"citywall: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            code = EXIT_FAILURE
    return code


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="citywall", description="City-management command-center wall.")
    src = p.add_argument_group("sources")
    src.add_argument("--feed", action="append", type=endpoint, metavar="ENDPOINT",
                     help="subscribe to a protocol feed (repeatable); default tcp://127.0.0.1:5556")
    src.add_argument("--demo", action="store_true", help="run the built-in demo city in-process")
    src.add_argument("--demo-feed", type=endpoint, metavar="ENDPOINT",
                     help="also let other consoles see the demo city: bind it here")
    src.add_argument("--speed", type=positive_float, default=1.0,
                     help="demo city clock speed (x wall time)")
    src.add_argument("--seed", type=int, default=1, help="demo city random seed")
    src.add_argument("--start", dest="start_ms", type=time_ms, default=None,
                     help="demo city start time (ISO 8601 or ms); default now")
    src.add_argument("--clock", choices=("wall", "feed"), default="wall",
                     help="live clock: wall time, or follow the publishers' heartbeats")
    src.add_argument("--max-record-bytes", type=positive_int, default=DEFAULT_MAX_RECORD_BYTES)
    src.add_argument("--dispatch", type=endpoint, metavar="ENDPOINT",
                     help="the dispatch service to send orders to (with --demo: its own)")
    src.add_argument("--console-id", default=f"{socket.gethostname()}-{os.getpid()}",
                     metavar="NAME", help="this console's name in its orders")
    out = p.add_argument_group("running")
    out.add_argument("--headless", action="store_true", help="no window; write status JSON")
    out.add_argument("--run-for", type=positive_float, metavar="SECONDS",
                     help="stop after this many seconds of wall time")
    out.add_argument("--status-out", metavar="FILE", help="write the JSON status here")
    out.add_argument("--status-every", type=positive_float, default=2.0, metavar="SECONDS")
    out.add_argument("--screenshot-dir", metavar="DIR",
                     help="save one PNG per screen window at exit")
    out.add_argument("--lang", choices=("zh", "en"), default="zh")
    out.add_argument("--tiles", metavar="URL|FILE.mbtiles",
                     help="basemap: an XYZ template on the local network "
                          "(http://tiles.local/{z}/{x}/{y}.png) or an .mbtiles file; "
                          "default: the districts and a grid")
    out.add_argument("--export-public-map", type=export_file, metavar="FILE.html",
                     help="at exit, write the public city map of the open cases (one "
                          "self-contained HTML page)")
    out.add_argument("--export-open311", type=export_file, metavar="FILE.json",
                     help="at exit, write the open cases as Open311 GeoReport v2 requests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.demo and not args.feed:
        args.feed = [check_endpoint("tcp://127.0.0.1:5556")]
    if args.headless and args.screenshot_dir:
        build_parser().error("--screenshot-dir needs windows; drop --headless")
    from ui.session import build_session
    try:
        session = build_session(args)
    except OSError as exc:          # zmq.ZMQError is an OSError: a port in use, a bad path
        print(f"citywall: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    export_code = 0

    def at_exit() -> None:          # after the last drain, so the exports match the status
        nonlocal export_code
        export_code = write_exports(session.situation, args)

    try:
        if args.headless:
            from ui.headless import run_headless
            run_headless(session, args.run_for, args.status_out, args.status_every, at_exit)
            return export_code
        from ui.app import run_windows
        return run_windows(session, args, at_exit) or export_code
    finally:
        session.stop()


if __name__ == "__main__":
    sys.exit(main())
