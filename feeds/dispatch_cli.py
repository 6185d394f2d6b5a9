"""The dispatch service's command line: ``python -m feeds.dispatch_service``.

    python -m feeds.dispatch_service --source ENDPOINT [--source …] [--dispatch EP] [--feed EP]
        [--db FILE] [--key SECRET --trust DIR] [--roles FILE.toml]
        [--source-server-key FILE [--source-server-key FILE …]] [--insecure]
        [--future-tolerance-s S] [--max-cases N] [--max-units N] [--open-case-max-days D] …
    python -m feeds.dispatch_service audit --db FILE [--since TIME] [--console KEY]
    python -m feeds.dispatch_service --config centre.toml   the site config's [dispatch_service]

Secure unless told otherwise. ``--key`` (the service's own key pair: the ``.key_secret``
file, mode 600) and ``--trust`` (a directory of the client keys it accepts, for orders and feed
alike) make both sockets CURVE servers. Without them, binding ``--dispatch`` or ``--feed``
beyond loopback, or hearing a ``--source`` beyond loopback without ``--source-server-key``,
is refused — unless ``--insecure``, which also lets a secret key file others can read be used.
``--roles`` says what each key may do (``feeds.roles``); with keys but no roles file every
trusted key is a commander. ``--source-server-key``: the publishers' server key, once for all
sources or once per ``--source`` in the same order; the service connects to them with its
own ``--key``.

Every problem with a setting — a missing or malformed key file, a secret key others can read,
a roles file that cannot be used, a bind the keys do not cover — is one line on stderr and
exit 2, before anything is bound. No secret key is ever printed.
"""
from __future__ import annotations

import logging
import os
import signal
import stat
import sys
from pathlib import Path

from feeds.args import (EXIT_USAGE, OneLineParser, endpoint, frame_name, port_number,
                        positive_float, positive_int)
from feeds.bounds import DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES
from feeds.dispatch_learning import DEFAULT_MAX_CASES, DEFAULT_MAX_UNITS, OPEN_CASE_MAX_AGE_MS
from feeds.dispatch_service import (DAY_MS, DEFAULT_FEED, DEFAULT_SRC, BindError,
                                    DispatchService)
from feeds.dispatch_snapshots import DEFAULT_SNAPSHOT_BURST, DEFAULT_SNAPSHOTS_PER_MINUTE
from feeds.dispatch_store import default_db_path
from feeds.keys import KeyFileError, load_key
from feeds.orders import DEFAULT_MAX_SNAPSHOT_BYTES, MAX_ORDER_BYTES
from feeds.roles import Roles, RolesError, load_roles
from feeds.schema import DEFAULT_DISPATCH
from feeds.security import ClientKeys, SecurityError, ServerKeys, TrustStore, load_own_key

LOG = logging.getLogger("feeds.dispatch")
PROG = "feeds.dispatch_service"


def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG,
                      description="The CityWall dispatch service: the single writer of "
                                  "assignments.",
                      epilog=f"python -m {PROG} audit --help: the order log as CSV (who "
                             "ordered what).")
    p.add_argument("--config", metavar="FILE.toml",
                   help="read the settings from a site config's [dispatch_service] section "
                        "(key = value for each --flag: source = [\"tcp://…\"], db = \"…\"); "
                        "flags given here override the file's")
    p.add_argument("--source", type=endpoint, action="append", required=True,
                   metavar="ENDPOINT", help="a protocol feed to learn cases and units from "
                                            "(repeat for more)")
    p.add_argument("--dispatch", type=endpoint, default=DEFAULT_DISPATCH, metavar="ENDPOINT",
                   help=f"bind the ROUTER for orders here (default {DEFAULT_DISPATCH})")
    p.add_argument("--feed", type=endpoint, default=DEFAULT_FEED, metavar="ENDPOINT",
                   help=f"publish changes here (default {DEFAULT_FEED})")
    p.add_argument("--db", default=None, metavar="FILE",
                   help=f"the SQLite file (default {default_db_path()})")
    p.add_argument("--src", default=DEFAULT_SRC, help="the feed's src (default dispatch)")
    p.add_argument("--db-max-mb", type=positive_float, default=None, metavar="MB",
                   help="refuse orders once the database would grow past this size")
    sec = p.add_argument_group("keys (CURVE)")
    sec.add_argument("--key", default=None, metavar="SECRET",
                     help="the service's key pair (NAME.key_secret, mode 600): orders and "
                          "feed are CURVE servers")
    sec.add_argument("--trust", default=None, metavar="DIR",
                     help="the client public keys accepted (NAME.key files): a key file "
                          "removed is refused from its next order, and for new connections "
                          "within 2 s")
    sec.add_argument("--roles", default=None, metavar="FILE",
                     help="what each key may do: [client.NAME] role = viewer|dispatcher|"
                          "commander|trainer, districts = [adcodes] (without it every "
                          "trusted key is a commander)")
    p.add_argument("--source-crs", action="append", default=None, type=frame_name,
                   metavar="wgs84|gcj02",
                   help="the --source feeds' coordinate frame: once for all, or once per "
                        "--source in the same order (default gcj02, the protocol's)")
    sec.add_argument("--source-server-key", action="append", default=None, metavar="FILE",
                     help="the --source publishers' server key: once for all, or once per "
                          "--source in the same order (connects with --key)")
    sec.add_argument("--insecure", action="store_true",
                     help="allow binding beyond loopback without keys, sources beyond "
                          "loopback without server keys, and a secret key others can read")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-order-bytes", type=positive_int, default=MAX_ORDER_BYTES,
                     metavar="N", help="a larger order frame is dropped by ZeroMQ and its "
                                       f"sender disconnected (default {MAX_ORDER_BYTES})")
    lim.add_argument("--max-snapshot-bytes", type=positive_int,
                     default=DEFAULT_MAX_SNAPSHOT_BYTES, metavar="N",
                     help="a larger snapshot is refused, not sent (default "
                          f"{DEFAULT_MAX_SNAPSHOT_BYTES}; consoles take up to the same)")
    lim.add_argument("--max-message-bytes", type=positive_int,
                     default=DEFAULT_MAX_MESSAGE_BYTES, metavar="N",
                     help="largest message taken from a --source feed (default "
                          f"{DEFAULT_MAX_MESSAGE_BYTES})")
    lim.add_argument("--snapshot-per-minute", type=positive_float,
                     default=DEFAULT_SNAPSHOTS_PER_MINUTE, metavar="N",
                     help="snapshots a client (connection, and key when secured) may ask "
                          f"for a minute (default {DEFAULT_SNAPSHOTS_PER_MINUTE:g})")
    lim.add_argument("--snapshot-burst", type=positive_int, default=DEFAULT_SNAPSHOT_BURST,
                     metavar="N", help="… and at once (default "
                                       f"{DEFAULT_SNAPSHOT_BURST})")
    lim.add_argument("--future-tolerance-s", type=positive_float,
                     default=DEFAULT_FUTURE_MS / 1000, metavar="SECONDS",
                     help="a --source record dated further ahead of the clock is refused; the "
                          "service's own records are never dated further ahead "
                          f"(default {DEFAULT_FUTURE_MS // 1000})")
    lim.add_argument("--max-cases", type=positive_int, default=DEFAULT_MAX_CASES, metavar="N",
                     help="cases held: a new case_id past this is refused (default "
                          f"{DEFAULT_MAX_CASES})")
    lim.add_argument("--max-units", type=positive_int, default=DEFAULT_MAX_UNITS, metavar="N",
                     help=f"units held, likewise (default {DEFAULT_MAX_UNITS})")
    lim.add_argument("--open-case-max-days", type=positive_float,
                     default=OPEN_CASE_MAX_AGE_MS / DAY_MS, metavar="DAYS",
                     help="an open case not updated for this long is forgotten (default "
                          f"{OPEN_CASE_MAX_AGE_MS // DAY_MS})")
    p.add_argument("--run-for", type=positive_float, default=None, metavar="SECONDS")
    p.add_argument("--metrics-port", type=port_number, default=None, metavar="N",
                   help="serve Prometheus metrics on this port (http://HOST:N/metrics)")
    p.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDR",
                   help="the address the metrics are served on (default 127.0.0.1)")
    return p


def load_security(args) -> tuple[ServerKeys | None, ClientKeys | None, Roles | None,
                                 list[str]]:
    """The keys, source keys and roles the arguments name, and what ``--insecure`` let
    through. ``SecurityError`` / ``RolesError``: one line."""
    notes: list[str] = []
    if args.trust and not args.key:
        raise SecurityError("--trust needs --key SECRET: the service's own key pair")
    if args.key and not args.trust:
        raise SecurityError("--key needs --trust DIR: the client keys the service accepts")
    if args.roles and not args.key:
        raise SecurityError("--roles needs --key and --trust: without keys no order says "
                            "who sent it")
    if args.source_server_key and not args.key:
        raise SecurityError("--source-server-key needs --key: the service connects to its "
                            "sources with its own key pair")
    keys = source_keys = roles = None
    if args.key:
        key = load_own_key(args.key, args.insecure)
        if os.stat(key.path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            notes.append(f"secret key {key.name} is readable by others")
        keys = ServerKeys(key, TrustStore(args.trust))
        if args.source_server_key:
            servers = []
            for path in args.source_server_key:
                try:
                    servers.append(load_key(path))
                except KeyFileError as exc:
                    raise SecurityError(f"--source-server-key: {exc}") from None
            if len(servers) == 1:
                source_keys = ClientKeys(key, servers[0])
            elif len(servers) == len(args.source):
                source_keys = ClientKeys(key, None, dict(zip(args.source, servers)))
            else:
                raise SecurityError(f"--source-server-key given {len(servers)} times for "
                                    f"{len(args.source)} --source: give it once (one key for "
                                    "all) or once per --source, in the same order")
    if args.roles:
        roles = load_roles(args.roles)
    return keys, source_keys, roles, notes


def main(argv: list[str] | None = None) -> int:
    from feeds.gc_tuning import tune_for_ingest
    tune_for_ingest()          # the collector less often: see feeds.gc_tuning
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["audit"]:
        from feeds.dispatch_audit import main as audit_main
        return audit_main(argv[1:])
    from feeds.site_config import apply_config
    argv = apply_config(parser(), argv, "dispatch_service", prog=PROG)
    args = parser().parse_args(argv)
    if getattr(args, "config", None):   # only an abbreviation (--conf) is left by apply_config
        parser().error("write --config in full: an abbreviation of it is not read")
    try:
        keys, source_keys, roles, notes = load_security(args)
    except (SecurityError, RolesError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    metrics = None
    if args.metrics_port is not None:       # before any socket: a port in use is exit 2
        from feeds.metrics import MetricsServer, dispatch_families
        try:
            metrics = MetricsServer(args.metrics_port, args.metrics_bind,
                                    dispatch_families).start()
        except OSError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.db is None:
        db = default_db_path()
        db.parent.mkdir(parents=True, exist_ok=True)
    else:
        db = Path(args.db)
    frames = list(args.source_crs or [])
    if frames and len(frames) not in (1, len(args.source)):
        print(f"{PROG}: error: --source-crs given {len(frames)} times for {len(args.source)} "
              "--source: give it once (one frame for all) or once per --source, in the same "
              "order", file=sys.stderr)
        return EXIT_USAGE
    source_crs = dict(zip(args.source, frames * len(args.source) if len(frames) == 1
                          else frames))
    service = DispatchService(args.source, args.dispatch, args.feed, db, src=args.src,
                              source_crs=source_crs,
                              max_db_bytes=int(args.db_max_mb * 2**20) if args.db_max_mb
                              else None, max_order_bytes=args.max_order_bytes,
                              max_snapshot_bytes=args.max_snapshot_bytes,
                              max_message_bytes=args.max_message_bytes,
                              snapshots_per_minute=args.snapshot_per_minute,
                              snapshot_burst=args.snapshot_burst, keys=keys,
                              source_keys=source_keys, roles=roles, insecure=args.insecure,
                              future_ms=int(args.future_tolerance_s * 1000),
                              max_cases=args.max_cases, max_units=args.max_units,
                              open_case_max_age_ms=int(args.open_case_max_days * DAY_MS))
    service.insecure_notes += notes
    try:
        service.open()
    except (BindError, SecurityError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        if metrics is not None:
            metrics.close()
        return EXIT_USAGE
    _warn(service)
    signal.signal(signal.SIGTERM, lambda *_: service.stop_soon())
    st = service.status()
    secured = (f"secured by key {st['key']}, roles: {st['roles']}" if st["secured"]
               else "not secured")
    print(f"dispatch service ready: orders {service.dispatch_endpoint} feed "
          f"{service.feed_endpoint} db {db} seq {service.seq} "
          f"storage {service.storage_error or 'ok'} {secured}"
          + (f" INSECURE: {'; '.join(st['insecure_why'])}" if st["insecure"] else ""),
          flush=True)
    service.start()
    if metrics is not None:                 # its status() is thread-safe: each second
        metrics.publish_every(service.status, 1.0)
    try:
        service.join(args.run_for)
    except KeyboardInterrupt:
        pass
    if metrics is not None:
        metrics.close()
    service.stop()
    return 0


def _warn(service: DispatchService) -> None:
    """Settings that work but deserve a line in the log."""
    for why in service.status()["insecure_why"]:
        LOG.warning("INSECURE (--insecure): %s", why)
    if service.keys is None:
        return
    trust = service.keys.trust
    for problem in trust.problems:
        LOG.warning("--trust: skipped %s", problem)
    names = set(trust.names())
    if not names:
        LOG.warning("--trust %s holds no client key: no console can connect", trust.directory)
    if service.roles.path is not None:
        missing = sorted(set(service.roles.grants) - names)
        if missing:
            LOG.warning("--roles names keys not in --trust (yet): %s", ", ".join(missing))
