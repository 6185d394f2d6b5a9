"""CityWall: the command-center wall for city management (城市管理指挥中心).

    python main.py --demo                      the wall on the built-in demo city
    python main.py --feed tcp://host:5556      the wall on live feeds
    python main.py --mqtt mqtt://host:1883     the wall on an MQTT broker (SenML, OwnTracks)
    python main.py --headless --demo --run-for 30 --status-out status.json
    python main.py --replay day.mcap --speed 8  a recorded day, with a transport bar
    python main.py --replay day.mcap --training --debrief-out debrief.html
    python main.py duty-plan --history FILE.parquet --day 2026-11-24 --out plan.csv
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from feeds.args import (EXIT_USAGE, OneLineParser, district_list, endpoint, frame_name,
                        port_number, positive_float, positive_int, time_ms)
from feeds.bounds import DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES
from feeds.endpoints import check_endpoint
from feeds.key_args import Ordered
from feeds.mqtt_args import add_mqtt_args
from feeds.schema import DEFAULT_MAX_RECORD_BYTES
from ui.security_args import add_console_security_args

EXIT_FAILURE = 1
# --config: an option on the command line also drops these of the site config's (a replay or
# the demo on a wall whose config names live feeds)
_NETWORK = {"feed", "server_key", "state", "dispatch", "dispatch_server_key", "record_dir",
            "key", "publishers", "trust", "demo"}
CONFIG_DROPS = {"replay": _NETWORK, "demo": {"feed", "server_key", "state"},
                "feed": {"demo", "replay"}}


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


def check_replay_options(args) -> None:
    """Options that cannot go together: one line, exit 2."""
    p = build_parser()
    if args.replay:
        if args.demo or args.feed or args.mqtt:
            p.error("--replay has no network: drop --demo/--feed/--mqtt (a trainer republishes a "
                    "recording with python -m feeds.replay)")
        if args.dispatch:
            p.error("--replay sends no orders to a dispatch service; with --training they go "
                    "to the in-process training service")
        if args.record_dir:
            p.error("--record-dir records live feeds, not a replay")
        for flag, given in (("--key", args.key), ("--server-key", args.server_key),
                            ("--state", args.state), ("--mqtt", args.mqtt),
                            ("--publishers", args.publishers), ("--trust", args.trust),
                            ("--dispatch-server-key", args.dispatch_server_key)):
            if given:
                p.error(f"--replay has no network: drop {flag}")
    else:
        for flag, given in (("--training", args.training), ("--debrief-out", args.debrief_out),
                            ("--index-keyframes", args.index_keyframes)):
            if given:
                p.error(f"{flag} needs --replay FILE.mcap")
    if args.debrief_out and not args.training:
        p.error("--debrief-out needs --training")
    if args.index_keyframes and args.training:
        p.error("--index-keyframes: training keeps no keyframes (it runs forward only)")


def index_keyframes(session) -> int:
    """Every keyframe of the replay, into the keyframe file beside the recording."""
    replay = session.replay
    store = replay._keyframes
    if store.path is None or store.shared:
        session.stop()
        print(f"citywall: error: cannot write a keyframe file beside {replay.recording.path} "
              "(a read-only directory, or another wall writing it now)", file=sys.stderr)
        return EXIT_FAILURE
    try:
        replay.index_all()
    finally:
        session.stop()
    if store.failed:
        print(f"citywall: error: {store.failed}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{len(store)} keyframes, {store.bytes_on_disk() / 1e6:.0f} MB: {store.path}")
    return 0


def write_debrief(session, path: str, lang: str) -> int:
    from situation.debrief import write_debrief_html
    try:
        write_debrief_html(session.exercise.debrief(session.clock.now_ms()), path, lang)
    except OSError as exc:
        print(f"citywall: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="citywall", description="City-management command-center wall.")
    site = p.add_argument_group("site config (see docs/centre.toml)")
    site.add_argument("--config", metavar="FILE.toml",
                      help="read the wall's settings from a site config: [wall], with "
                           "[walls.NAME] over it; flags given here override the file's")
    site.add_argument("--wall", metavar="NAME",
                      help="with --config: which [walls.NAME] this machine is (needed when "
                           "the file has several)")
    src = p.add_argument_group("sources")
    src.add_argument("--feed", action=Ordered, type=endpoint, metavar="ENDPOINT",
                     help="subscribe to a protocol feed (repeatable; a --server-key right "
                          "after it is its own); default tcp://127.0.0.1:5556")
    src.add_argument("--state", action=Ordered, type=endpoint, metavar="ENDPOINT",
                     help="right after a --feed that is a broker's --out: the broker's --state "
                          "endpoint; the console asks it once for the whole picture and then "
                          "follows the feed from there (python -m feeds.broker)")
    src.add_argument("--feed-crs", action=Ordered, type=frame_name, metavar="wgs84|gcj02",
                     help="right after a --feed: the frame its coordinates are in (default "
                          "gcj02, the protocol's)")
    add_mqtt_args(src)
    src.add_argument("--map-crs", type=frame_name, default="gcj02", metavar="gcj02|wgs84",
                     help="the wall's coordinate frame: gcj02 (AMap's, the district data's; "
                          "default) or wgs84 (GPS, OSM or government tiles); every source's "
                          "points are converted into it")
    src.add_argument("--districts", type=district_list, default=None, metavar="ADCODE,…",
                     help="a district wall: show only cases, units and sensors of these "
                          "districts (adcodes, e.g. 110101,110105)")
    src.add_argument("--demo", action="store_true", help="run the built-in demo city in-process")
    src.add_argument("--demo-feed", type=endpoint, metavar="ENDPOINT",
                     help="also let other consoles see the demo city: bind it here (beyond "
                          "loopback: with --key and --trust, or --insecure)")
    src.add_argument("--speed", type=positive_float, default=1.0,
                     help="demo city clock speed (x wall time)")
    src.add_argument("--seed", type=int, default=1, help="demo city random seed")
    src.add_argument("--start", dest="start_ms", type=time_ms, default=None,
                     help="demo city start time (ISO 8601 or ms); default now")
    src.add_argument("--clock", choices=("wall", "feed"), default="wall",
                     help="live clock: wall time, or follow the publishers' heartbeats")
    lim = p.add_argument_group("bounds on input (see the README, \"Bad input\")")
    lim.add_argument("--max-record-bytes", type=positive_int, default=DEFAULT_MAX_RECORD_BYTES,
                     metavar="N", help="a record larger than this is refused (default 65536)")
    lim.add_argument("--max-message-bytes", type=positive_int, default=DEFAULT_MAX_MESSAGE_BYTES,
                     metavar="N", help="a message (one frame) larger than this is never read: "
                                       "ZeroMQ drops it (default 8 MiB)")
    lim.add_argument("--future-tolerance-s", type=positive_float,
                     default=DEFAULT_FUTURE_MS / 1000, metavar="SECONDS",
                     help="a record dated further ahead of the clock is refused "
                          "(default 600)")
    lim.add_argument("--max-sources", type=positive_int, default=None, metavar="N",
                     help="publishers (src) followed on feed health; the rest are counted "
                          "together (default 1000)")
    lim.add_argument("--open-case-max-days", type=positive_float, default=None, metavar="DAYS",
                     help="an open case not updated for this long leaves the wall (default 30)")
    src.add_argument("--history", metavar="FILE", help="demand history (CSV or Parquet: ts, "
                     "district, category) for the peak-duty chart")
    src.add_argument("--roster", metavar="FILE.csv",
                     help="unit_id,district,shift for the peak-duty chart (default: the units' shift)")
    src.add_argument("--slot-minutes", type=int, default=60, metavar="N",
                     help="peak-duty time slot (must divide a day; default 60)")
    src.add_argument("--target-share", type=float, default=0.8, metavar="SHARE",
                     help="peak duty: share of cases with a unit within the target (default 0.8)")
    src.add_argument("--peak-max-hours", type=positive_float, default=3.0, metavar="H",
                     help="peak duty: a shortfall longer than this is said as all-day, not a "
                          "peak (default 3)")
    src.add_argument("--min-cases", type=positive_int, default=5, metavar="N",
                     help="supervision: no share or mean over fewer cases (暂无; default 5)")
    src.add_argument("--target-minutes", type=float, default=15.0, metavar="MIN",
                     help="peak duty: the target time (default 15)")
    src.add_argument("--dispatch", type=endpoint, metavar="ENDPOINT",
                     help="the dispatch service to send orders to (with --demo: its own)")
    src.add_argument("--dispatch-confirm-km", type=positive_float, default=None, metavar="KM",
                     help="a unit dropped further than this from a case (or of another "
                          "district) is asked about first (default 10)")
    src.add_argument("--console-id", default=f"{socket.gethostname()}-{os.getpid()}",
                     metavar="NAME", help="this console's name in its orders")
    add_console_security_args(p)
    rep = p.add_argument_group("recording and replay")
    rep.add_argument("--record-dir", metavar="DIR",
                     help="record every message received, as hourly MCAP files in DIR")
    rep.add_argument("--record-max-mb", type=positive_float, default=2048, metavar="MB",
                     help="with --record-dir: remove the oldest files past this size "
                          "(default 2048)")
    rep.add_argument("--replay", metavar="FILE.mcap",
                     help="replay a recording (no network); --speed and --start apply to it")
    rep.add_argument("--training", action="store_true",
                     help="with --replay: the trainee dispatches against the recorded day; "
                          "orders go to an in-process training service only")
    rep.add_argument("--debrief-out", type=export_file, metavar="FILE.html",
                     help="with --training: write the exercise's debrief here at exit")
    rep.add_argument("--index-keyframes", action="store_true",
                     help="with --replay: take every keyframe now, into the keyframe file "
                          "beside the recording, and exit (so the walls that open it with the "
                          "same options jump at once)")
    out = p.add_argument_group("running")
    out.add_argument("--headless", action="store_true", help="no window; write status JSON")
    out.add_argument("--run-for", type=positive_float, metavar="SECONDS",
                     help="stop after this many seconds of wall time")
    out.add_argument("--status-out", metavar="FILE", help="write the JSON status here")
    out.add_argument("--status-every", type=positive_float, default=2.0, metavar="SECONDS")
    out.add_argument("--screenshot-dir", metavar="DIR",
                     help="save one PNG per screen window at exit")
    out.add_argument("--lang", choices=("zh", "en"), default="zh")
    out.add_argument("--metrics-port", type=port_number, default=None, metavar="N",
                     help="serve Prometheus metrics on this port (http://HOST:N/metrics)")
    out.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDR",
                     help="the address the metrics are served on (default 127.0.0.1; 0.0.0.0 "
                          "for a Prometheus server on another machine)")
    out.add_argument("--layout", metavar="NAME|PATH",
                     help="a layout file (TOML) or a preset in layouts/: commander, wall-2, "
                          "wall-3, night, training; default: built in for the screens found")
    out.add_argument("--console", action="store_true",
                     help="the commander's console: one window of docks (default layout "
                          "commander) instead of the full-screen wall")
    out.add_argument("--shifts", metavar="NAME|PATH",
                     help="a shift schedule (layouts/shifts.toml): each shift's layout, followed "
                          "on the situation's clock, with a countdown before the switch")
    out.add_argument("--list-screens", action="store_true",
                     help="print the screens by position, left to right (index, name, "
                          "geometry, DPI) and exit")
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


def duty_plan_main(argv: list[str]) -> int:
    """``main.py duty-plan``: the duty plan of one day as CSV (the chart's code path,
    ``situation.peakduty.duty_plan``). Bad input: one line on stderr, exit 2."""
    p = OneLineParser(prog="citywall duty-plan",
                      description="Write the duty plan (demand forecast and staffing per "
                                  "district and slot) of one day as CSV.")
    p.add_argument("--history", required=True, metavar="FILE.parquet|FILE.csv",
                   help="events: ts (ms since the epoch, UTC), district (adcode), category")
    p.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="the local day to plan")
    p.add_argument("--out", required=True, type=export_file, metavar="plan.csv")
    p.add_argument("--roster", metavar="FILE.csv", help="unit_id,district,shift")
    p.add_argument("--slot-minutes", type=int, default=60, metavar="N")
    p.add_argument("--target-share", type=float, default=0.8, metavar="SHARE",
                   help="share of cases with a unit within the target time (default 0.8)")
    p.add_argument("--target-minutes", type=float, default=15.0, metavar="MIN")
    p.add_argument("--handling-minutes", type=float, default=30.0, metavar="MIN",
                   help="mean handling time of a case (default 30)")
    p.add_argument("--tz", default="Asia/Shanghai", help="the city's time zone")
    args = p.parse_args(argv)
    from situation.history import HistoryError, load_history
    from situation.peakduty import DutyConfig, duty_plan, load_roster, parse_day, write_plan
    try:
        cfg = DutyConfig(slot_minutes=args.slot_minutes, tz=args.tz,
                         target_share=args.target_share, target_minutes=args.target_minutes,
                         handling_min=args.handling_minutes)
        day = parse_day(args.day)
    except ValueError as exc:
        p.error(str(exc))
    try:
        loaded = load_history(args.history)
        roster = load_roster(args.roster, cfg) if args.roster else None
    except HistoryError as exc:
        p.error(str(exc))
    for problem in loaded.problems + (roster.attrs["problems"] if roster is not None else []):
        print(f"citywall duty-plan: warning: {problem}", file=sys.stderr)
    try:
        plan = duty_plan(loaded.events, day, cfg, roster=roster)
    except ValueError as exc:
        p.error(f"{args.history}: {exc}")
    try:
        write_plan(plan, args.out)
    except OSError as exc:
        print(f"citywall duty-plan: error: cannot write {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_FAILURE
    print(f"duty plan {day.isoformat()}: {len(plan)} rows to {args.out} "
          f"({loaded.used} events used, {loaded.skipped} skipped)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from feeds.gc_tuning import tune_for_ingest
    tune_for_ingest()          # the collector less often: see feeds.gc_tuning
    argv = sys.argv[1:] if argv is None else list(argv)
    from feeds.startup import STARTUP
    STARTUP.reset()            # this start's marks (a second main() in one process: its own)
    if argv[:1] == ["duty-plan"]:
        return duty_plan_main(argv[1:])
    from feeds.site_config import apply_config
    argv = apply_config(build_parser(), argv, "wall", prog="citywall", also_drops=CONFIG_DROPS)
    args = build_parser().parse_args(argv)
    if args.config or args.wall:        # only an abbreviation (--conf) is left by apply_config
        build_parser().error("write --config and --wall in full: an abbreviation of them is "
                             "not read, and the wall would run without its config")
    check_replay_options(args)
    from feeds.mqtt_args import mqtt_settings
    try:
        args.mqtt_sources = mqtt_settings(args)
    except ValueError as exc:
        build_parser().error(str(exc))
    if not args.demo and not args.feed and not args.replay and not args.mqtt:
        args.feed = [check_endpoint("tcp://127.0.0.1:5556")]
    if args.list_screens:
        from ui.app import list_screens
        return list_screens()
    if args.headless and args.screenshot_dir:
        build_parser().error("--screenshot-dir needs windows; drop --headless")
    if args.demo and not args.index_keyframes:
        # The demo city's three-hour warm-up runs in a child process while this one starts
        # (feeds.demo_ahead); its start is fixed now, so both sides build the same city.
        import time
        from feeds.demo_ahead import CityAhead
        if args.start_ms is None:
            args.start_ms = time.time_ns() // 1_000_000
        args.demo_city_ahead = CityAhead(args.seed, args.start_ms).start()
    try:
        return _start(args)
    finally:
        ahead = getattr(args, "demo_city_ahead", None)
        if ahead is not None:
            ahead.close()           # taken or not: no child left writing to a pipe
        from feeds.startup import STARTUP
        if STARTUP.listener is not None:      # a windowed start that failed before its wall
            from ui.app import startup_done
            startup_done()


def _start(args) -> int:
    """``main`` once the options are read (and the demo city's warm-up forked off)."""
    from situation.peakduty import DutyConfig
    try:
        args.duty = DutyConfig(slot_minutes=args.slot_minutes, target_share=args.target_share,
                               target_minutes=args.target_minutes,
                               peak_max_hours=args.peak_max_hours)
    except ValueError as exc:
        build_parser().error(str(exc))
    import situation.supervision as supervision
    supervision.MIN_CASES = args.min_cases        # read by every figure when asked
    from feeds.publishers import PublishersError
    from feeds.security import SecurityError
    from feeds.startup import STARTUP
    from ui.session import ReplayOptionError, build_session
    if not args.headless and not args.index_keyframes:
        from ui.app import early_app           # the progress line needs Qt before the session
        early_app(args)
    STARTUP.stage("session")
    try:
        session = build_session(args)
    except (ReplayOptionError, SecurityError, PublishersError) as exc:
        build_parser().error(str(exc))
    except OSError as exc:          # zmq.ZMQError is an OSError: a port in use, a bad path
        print(f"citywall: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    STARTUP.mark("session_s")
    if args.index_keyframes:
        return index_keyframes(session)
    from feeds.metrics import start_console_metrics
    try:                            # --metrics-port: the loops publish their status to it
        metrics = start_console_metrics(args, session)
    except OSError as exc:          # the port in use: one line, exit 2
        session.stop()
        print(f"citywall: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    export_code = 0

    def at_exit() -> None:          # after the last drain, so the exports match the status
        nonlocal export_code
        export_code = write_exports(session.situation, args)
        if args.debrief_out and session.exercise is not None:
            export_code = write_debrief(session, args.debrief_out, args.lang) or export_code

    try:
        if args.headless:
            from ui.headless import run_headless
            run_headless(session, args.run_for, args.status_out, args.status_every, at_exit)
            fatal = session.fatal()
            if fatal:
                print(f"citywall: error: stopped for good: {', '.join(fatal)} (see the "
                      "status's faults)", file=sys.stderr)
                return EXIT_FAILURE
            return export_code
        from ui.app import run_windows
        return run_windows(session, args, at_exit) or export_code
    finally:
        session.stop()
        if metrics is not None:
            metrics.close()


if __name__ == "__main__":
    sys.exit(main())
