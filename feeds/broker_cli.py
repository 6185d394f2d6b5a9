"""``python -m feeds.broker``: the broker's command line, status file and metrics (the broker
itself is ``feeds.broker``). Options may come from the site config's ``[broker]`` section
(``--config FILE``); a bad option is one line and exit 2. No Qt."""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path

import zmq

from feeds.args import EXIT_USAGE, OneLineParser, endpoint, port_number, positive_float, \
    positive_int
from feeds.broker import DEFAULT_SNDHWM, PROG, Broker
from feeds.key_args import KeyFiles, Ordered, add_insecure_arg, check_connect, own_key
from feeds.keys import Key
from feeds.publishers import PublishersError
from feeds.security import SecurityError, TrustStore, check_bind
from feeds.site_config import apply_config

def parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Fan feeds out to every wall, and serve the "
                      "current state to walls that join late.")
    p.add_argument("--in", dest="ins", action="append", type=endpoint, default=None,
                   metavar="ENDPOINT", help="bind here for publishers to connect to "
                                           "(repeatable)")
    p.add_argument("--upstream", action=Ordered, type=endpoint, metavar="ENDPOINT",
                   help="connect to a publisher that binds, or to another broker's --out "
                        "(repeatable; a --server-key right after it is its key)")
    p.add_argument("--upstream-state", action=Ordered, type=endpoint, metavar="ENDPOINT",
                   help="right after an --upstream that is a broker: its --state, to rebuild "
                        "this broker's state from at start")
    p.add_argument("--server-key", action=Ordered, metavar="PUBLIC",
                   help="right after an --upstream: that publisher's or broker's public key")
    p.add_argument("--out", type=endpoint, required=True, metavar="ENDPOINT",
                   help="bind here for walls to subscribe to")
    p.add_argument("--state", type=endpoint, default=None, metavar="ENDPOINT",
                   help="bind here to answer walls that ask for the current state")
    sec = p.add_argument_group("keys (CURVE)")
    sec.add_argument("--key", default=None, metavar="SECRET", help="the broker's own key pair")
    sec.add_argument("--trust", default=None, metavar="DIR",
                     help="the walls that may subscribe (--out) and ask (--state)")
    sec.add_argument("--in-trust", default=None, metavar="DIR",
                     help="the publishers that may send (--in)")
    sec.add_argument("--publishers", default=None, metavar="FILE.toml",
                     help="who may publish which src ([publisher.NAME] src = [...], NAME the "
                          "stem of the publisher's key in --in-trust): a message from --in "
                          "with a src its key may not use is refused here (walls behind a "
                          "broker see only the broker's key)")
    add_insecure_arg(sec)
    p.add_argument("--sndhwm", type=positive_int, default=DEFAULT_SNDHWM, metavar="N",
                   help=f"messages queued for one wall before it loses them (default "
                        f"{DEFAULT_SNDHWM})")
    p.add_argument("--status-out", default=None, metavar="FILE",
                   help="write the broker's status JSON here every --status-every seconds")
    p.add_argument("--status-every", type=positive_float, default=1.0, metavar="SECONDS")
    p.add_argument("--metrics-port", type=port_number, default=None, metavar="N",
                   help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDR")
    p.add_argument("--run-for", type=positive_float, default=None, metavar="SECONDS")
    p.add_argument("--config", metavar="FILE.toml",
                   help="read the options from the site config's [broker] section (options "
                        "given here override it)")
    return p


def broker_from_args(args, context: zmq.Context | None = None) -> Broker:
    """The broker the options describe; a key problem is a ``SecurityError`` (exit 2)."""
    ins = list(args.ins or [])
    order = list(getattr(args, "_key_order", None) or [])
    upstreams_ep = [v for d, v in order if d == "upstream"]
    if not ins and not upstreams_ep:
        raise SecurityError("nothing to forward: give --in ENDPOINT (publishers connect) or "
                            "--upstream ENDPOINT (connect to a publisher or broker)")
    own = own_key(args.key, args.insecure)
    trust = TrustStore(args.trust) if args.trust else None
    in_trust = TrustStore(args.in_trust) if args.in_trust else None
    if own is None:
        for flag, given in (("--trust", args.trust), ("--in-trust", args.in_trust)):
            if given:
                raise SecurityError(f"{flag} needs --key SECRET (the broker's own key pair)")
    else:
        if trust is None:
            raise SecurityError("--key needs --trust DIR (the walls that may subscribe)")
        if ins and in_trust is None and any(not e.startswith("inproc://") for e in ins):
            raise SecurityError("--key with --in needs --in-trust DIR (the publishers that may "
                                "send; a wall's key must not be able to publish)")
    secured = own is not None
    for ep in [*ins, args.out, *([args.state] if args.state else [])]:
        check_bind(ep, secured, args.insecure)
    # Upstreams: each with the --server-key and --upstream-state right after it.
    files = KeyFiles()
    upstreams: list[tuple[str, Key | None, str | None]] = []
    current: list | None = None
    for dest, value in order:
        if dest == "upstream":
            current = [value, None, None]
            upstreams.append(current)
        elif current is None:
            raise SecurityError(f"--{dest.replace('_', '-')} {value}: put it right after its "
                                "--upstream")
        elif dest == "server_key":
            current[1] = value
        elif dest == "upstream_state":
            current[2] = value
    out_up = []
    for ep, key_path, state_ep in upstreams:
        if own is not None and key_path is None and not ep.startswith("inproc://"):
            raise SecurityError(f"no server key for --upstream {ep}: give --server-key PUBLIC "
                                "right after it")
        if own is None:
            if key_path:
                raise SecurityError("--server-key needs --key SECRET")
            check_connect(ep, False, args.insecure)
        out_up.append((ep, files.server(key_path) if key_path else None, state_ep))
    publishers = None
    if args.publishers:
        if own is None or in_trust is None:
            raise SecurityError("--publishers needs --key and --in-trust: a publisher is known "
                                "by its key")
        if not ins:
            raise SecurityError("--publishers checks what arrives on --in: give --in ENDPOINT")
        from feeds.publishers import load_publishers
        publishers = load_publishers(args.publishers)
    return Broker(ins, args.out, args.state, upstreams=out_up, key=own, trust=trust,
                  in_trust=in_trust, context=context, sndhwm=args.sndhwm,
                  publishers=publishers)


def main(argv: list[str] | None = None) -> int:
    from feeds.gc_tuning import tune_for_ingest
    tune_for_ingest()          # the collector less often: see feeds.gc_tuning
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    argv = apply_config(p, argv, "broker", prog=PROG)      # [broker] of --config FILE
    args = p.parse_args(argv)
    if args.config:                     # only an abbreviation (--conf) is left by apply_config
        p.error("write --config in full: an abbreviation of it is not read")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        broker = broker_from_args(args)
        broker.start()
    except (SecurityError, PublishersError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except zmq.ZMQError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    metrics = None
    if args.metrics_port:
        try:
            from feeds.metrics import MetricsServer, broker_families
            metrics = MetricsServer(args.metrics_port, args.metrics_bind, broker_families)
            metrics.start()
        except OSError as exc:
            broker.stop()
            print(f"{PROG}: error: metrics on port {args.metrics_port}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    signal.signal(signal.SIGTERM, lambda *_: broker._stop.set())
    print(f"broker ready: in {' '.join(broker.ins) or '-'} upstream "
          f"{' '.join(u[0] for u in broker.upstreams) or '-'} out {broker.out} state "
          f"{broker.state_endpoint or '-'} {'secured' if broker.key else 'NOT SECURED'}",
          flush=True)
    deadline = None if args.run_for is None else time.monotonic() + args.run_for
    try:
        while not broker._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            broker._stop.wait(min(args.status_every, 1.0))
            _report(broker, args, metrics)
            if broker.faults.fatal:
                print(f"{PROG}: error: stopped for good: {', '.join(broker.faults.fatal)}",
                      file=sys.stderr)
                break
    except KeyboardInterrupt:
        pass
    broker.stop()
    _report(broker, args, metrics)
    if metrics is not None:
        metrics.close()
    return 1 if broker.faults.fatal else 0


def _report(broker: Broker, args, metrics) -> None:
    """The status to its file and the metrics, once a second: a status that cannot be made or
    written is a fault (said in the next one), never the broker's end."""
    try:
        doc = broker.status()
    except Exception as exc:
        broker.faults.record("status", exc)
        return
    if metrics is not None:
        metrics.publish(doc)
    if args.status_out:
        from situation.atomic import write_text_atomic
        try:
            path = Path(args.status_out)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1))
        except Exception as exc:
            broker.faults.record("status file", exc)


if __name__ == "__main__":
    sys.exit(main())
