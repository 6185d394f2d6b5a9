"""One console's running parts, wired from the command line: the clock, the situation and its
sources (``feeds.source``: ZeroMQ feeds, MQTT brokers, a recording, the demo city) — taken
from the same way whatever their kind.

No Qt here: the headless runner and the windowed wall share it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from feeds.endpoints import DEMO_DISPATCH, DEMO_DISPATCH_FEED, DEMO_ENDPOINT
from feeds.crs import OUTSIDE, PROTOCOL_DEFAULT, check_frame, reframe
from feeds.faults import Faults
from feeds.metrics import drain_figures
from feeds.receiver import Receiver
from feeds.source import take_all
from feeds.startup import STARTUP
from feeds.bounds import DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES
from situation.atomic import write_text_atomic
from situation.clock import Clock, FeedClock, ScaledClock, WallClock
from situation.limits import DAY_MS, Limits
from situation.scope import Scope
from situation.store import Situation
from ui.security_args import ConsoleSecurity



@dataclass
class Session:
    clock: Clock
    situation: Situation
    sources: list                               # feeds.source.Source, each
    mode: str                                   # LIVE, DEMO, REPLAY or TRAINING
    client: object | None = None                # feeds.dispatch_client.DispatchClient
    services: list = field(default_factory=list)   # in-process services (their faults shown)
    replay: object | None = None                # situation.replay.Replay (REPLAY, TRAINING)
    recorder: object | None = None              # feeds.record.RollingRecorder (--record-dir)
    exercise: object | None = None              # situation.training.Exercise (TRAINING)
    faults: Faults = field(default_factory=Faults)   # what stopped inside, said on the wall
    security: ConsoleSecurity = field(default_factory=ConsoleSecurity)   # keys, plain sockets
    context: zmq.Context | None = None

    def stop(self) -> None:
        for source in self.sources:
            guarded(self.faults, "stopping a source", source.stop)
        if self.recorder is not None:
            self.recorder.close()
        if self.exercise is not None:
            self.exercise.close()
        if self.client is not None:
            self.client.close()

    def drain(self) -> None:
        """Hand everything received so far to the situation (headless; Qt uses the bridge)."""
        started = time.perf_counter()
        batch = guarded(self.faults, "sources", take_all, self.sources, self.faults)
        if batch is not None:
            guarded(self.faults, "situation", self.situation.apply, batch)
        drain_figures(self).add(time.perf_counter() - started)     # status' ingest
        STARTUP.after_drain(self.situation)

    def fatal(self) -> list[str]:
        """What stopped for good (the headless console exits non-zero)."""
        return self.faults.fatal

    def status(self) -> dict:
        doc = self.situation.status()
        doc["mode"] = self.mode
        doc["map_crs"] = getattr(self.situation.locator, "crs", "gcj02")   # the one frame held
        doc["inputs"] = [guarded(self.faults, "source health", s.health)
                         or {"name": getattr(s, "name", "?"), "up": False}
                         for s in self.sources]
        doc["faults"] = self.all_faults()
        doc["startup"] = STARTUP.status()
        doc["security"] = self.security.status(self.situation, self.client, self.context)
        if self.replay is not None:
            doc["replay"] = self.replay.status()
        if self.recorder is not None:
            doc["recording"] = self.recorder.status()
        if self.exercise is not None:
            doc["training"] = self.exercise.status()
        # For the metrics endpoint (feeds.metrics): what is received and not yet applied, and
        # how long applying takes (the bridge's figures in the windowed wall: app.py shares them).
        doc["ingest"] = {"backlog": sum(guarded(self.faults, "source", s.backlog) or 0
                                        for s in self.sources if hasattr(s, "backlog")),
                         **drain_figures(self).status()}
        if callable(getattr(self.client, "status", None)):
            dispatch = guarded(self.faults, "dispatch client", self.client.status)
            if dispatch is not None:
                doc["dispatch"] = dispatch
        return doc

    def all_faults(self) -> dict[str, dict]:
        """Every fault of the console's parts (receivers, situation) and of the services it
        runs in-process, by what failed."""
        out = self.faults.snapshot()
        for svc in self.services:
            try:
                for what, fault in (svc.status().get("faults") or {}).items():
                    out[f"dispatch service: {what}"] = fault
            except Exception as exc:              # a status must always be written
                out["dispatch service"] = {"what": "dispatch service", "count": 1,
                                           "error": repr(exc)[:200], "recovered": True}
        return out


def guarded(faults: Faults, what: str, step, *args):
    """Run one step of a loop; an exception costs this step and is a fault, never the loop."""
    try:
        return step(*args)
    except Exception as exc:
        faults.record(what, exc)
        return None


def receiver_options(args, clock: Clock, faults: Faults) -> dict:
    """What every Receiver of a console is given from the command line."""
    return dict(max_record_bytes=args.max_record_bytes,
                max_message_bytes=getattr(args, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
                future_ms=int(getattr(args, "future_tolerance_s", DEFAULT_FUTURE_MS / 1000) * 1000),
                max_sources=situation_limits(args).max_sources,
                now_ms=clock.now_ms, faults=faults)


def situation_limits(args) -> Limits:
    days = getattr(args, "open_case_max_days", None)
    return Limits(max_sources=getattr(args, "max_sources", None) or Limits.max_sources,
                  **({"open_case_max_age_ms": int(days * DAY_MS)} if days else {}))


def build_session(args) -> Session:
    """From parsed arguments (see main.py) to a started session. Keys that cannot be used
    raise ``SecurityError`` (or ``PublishersError``) before any socket opens."""
    if getattr(args, "replay", None):
        return build_replay_session(args)

    from ui.security_args import console_security
    ctx = zmq.Context.instance()
    demo_feed = getattr(args, "demo_feed", None) if args.demo else None
    dispatch = args.dispatch or (DEMO_DISPATCH if args.demo else None)
    feeds = list(args.feed or [])
    # The console hears its own demo city in-process; --demo-feed binds it for others too.
    demo_feeds = [DEMO_ENDPOINT, DEMO_DISPATCH_FEED] if args.demo else []
    security = console_security(args, demo_feeds + feeds, dispatch)
    display = display_frame(args)
    if args.demo:
        # The only wall-time read of a demo: where its city's day begins.
        start_ms = args.start_ms if args.start_ms is not None else time.time_ns() // 1_000_000
        clock: Clock = ScaledClock(start_ms, args.speed)
        mode = "DEMO"
    else:
        clock = FeedClock() if args.clock == "feed" else WallClock()
        mode = "LIVE"
    faults = Faults()
    situation = Situation(clock, locator=display_locator(display),
                          limits=situation_limits(args), faults=faults,
                          scope=Scope.of(getattr(args, "districts", None)))
    recorder = None
    if getattr(args, "record_dir", None):
        from feeds.record import RollingRecorder
        # Receive time on the console's one clock: a replay runs on the time the console saw.
        recorder = RollingRecorder(args.record_dir, int(args.record_max_mb * 1024 * 1024),
                                   now_ms=clock.now_ms)
    options = dict(keys=security.feeds, **receiver_options(args, clock, faults),
                   tap=recorder.tap if recorder is not None else None, display_crs=display)
    sources: list = []
    services: list = []

    def fail(exc: Exception, what: str):
        for source in sources:
            source.stop()
        raise OSError(f"{what}: {exc}") from None

    if args.demo:
        from feeds.demo_source import DemoSource
        STARTUP.stage("demo_city")
        demo = DemoSource(seed=args.seed, start_ms=start_ms, now_ms=clock.now_ms, context=ctx,
                          also_bind=demo_feed, serve_keys=security.serve,
                          receiver_options=options,
                          ahead=getattr(args, "demo_city_ahead", None))
        sources.append(demo.start())           # the service before the client that orders it
        services.append(demo.service)
    client = None
    if dispatch:
        from feeds.dispatch_client import DispatchClient
        keyed = {"keys": security.dispatch} if security.dispatch is not None else {}
        client = DispatchClient(dispatch, args.console_id, clock_ms=clock.now_ms, context=ctx,
                                mode="LIVE", **keyed)
    if client is not None and not args.demo:
        if join_mid_shift(client, situation, display) is not None:
            STARTUP.mark("dispatch_joined_s")      # every open case and unit, at once
    state = feed_states(args)
    try:
        for group, allowed in receiver_groups(feeds, security.allowed_src):
            sources.append(Receiver(group, allowed_src=allowed, context=ctx, state=state,
                                    crs=feed_frames(args), **options).start())
    except zmq.ZMQError as exc:
        fail(exc, f"cannot subscribe to {' '.join(feeds)}")
    try:
        sources.extend(s.start() for s in mqtt_sources(
            args, clock, faults, display, require_srcs=security.allowed_src is not None))
    except (OSError, ValueError) as exc:
        fail(exc, "cannot use the MQTT source")
    for source in sources:
        for ep in source.endpoints:
            situation.expect_endpoint(ep)
    return Session(clock, situation, sources, mode, client=client, services=services,
                   recorder=recorder, faults=faults, security=security, context=ctx)


def display_frame(args) -> str:
    """The wall's one coordinate frame (``--map-crs``; GCJ-02 unless told)."""
    return check_frame(getattr(args, "map_crs", None) or "gcj02")


def display_locator(frame: str):
    """The district locator in the wall's frame (district outlines are GCJ-02 data)."""
    from feeds.districts import DistrictLocator
    return DistrictLocator(crs=frame)


def mqtt_sources(args, clock: Clock, faults: Faults, display: str,
                 require_srcs: bool = False) -> list:
    """``--mqtt URL`` (and the site config's ``[[wall.mqtt]]``): one source each. With a
    ``--publishers`` file (``require_srcs``) a protocol subscription must name its srcs."""
    settings = list(getattr(args, "mqtt_sources", None) or [])
    if not settings:
        return []
    from feeds.mqtt_source import MqttSource
    devices = unit_devices(args)
    limits = receiver_options(args, clock, faults)
    return [MqttSource(one, display_crs=display, now_ms=clock.now_ms, faults=faults,
                       max_message_bytes=limits["max_message_bytes"], devices=devices,
                       require_srcs=require_srcs)
            for one in settings]


def unit_devices(args) -> dict[str, str]:
    """The roster's ``device`` column: an OwnTracks phone (``USER/DEVICE``) → its unit."""
    roster = getattr(args, "roster", None)
    if not roster:
        return {}
    from feeds.roster_devices import load_devices
    return load_devices(roster)


def feed_frames(args) -> dict[str, str]:
    """``--feed EP --feed-crs wgs84``: a feed's coordinate frame (the protocol's, GCJ-02,
    unless told; a --feed-crs belongs to the --feed right before it)."""
    return _after_feed(args, "feed_crs", "--feed-crs", "a coordinate frame")


def feed_states(args) -> dict[str, str]:
    """``--feed OUT --state STATE``: each broker feed's state endpoint (a --state belongs to
    the --feed right before it)."""
    return _after_feed(args, "state", "--state", "state endpoints")


def _after_feed(args, dest_name: str, flag: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    previous = None
    for dest, value in list(getattr(args, "_key_order", None) or []):
        if dest == "feed":
            previous = value
        elif dest == dest_name:
            if previous is None:
                raise ReplayOptionError(f"{flag} {value}: put it right after its --feed")
            if previous in out:
                raise ReplayOptionError(f"{flag}: {previous} is given two {what}")
            out[previous] = value
    return out


def receiver_groups(feeds: list[str], allowed_src: dict | None):
    """One receiver for every feed; with a publishers file, the in-process feeds (the demo's
    own, which no key names) get a receiver of their own that takes any src."""
    if allowed_src is None:
        return [(feeds, None)] if feeds else []
    local = [ep for ep in feeds if ep.startswith("inproc://")]
    remote = [ep for ep in feeds if ep not in local]
    return [(g, a) for g, a in ((remote, allowed_src), (local, None)) if g]


TRAINING_DISPATCH = "inproc://citywall-training"


def build_replay_session(args) -> Session:
    """``--replay FILE``: no network; the recording drives the situation on its own clock.
    With ``--training`` the trainee's orders go to an in-process training service and
    nowhere else. A file or start time that cannot be used raises ReplayOptionError."""
    import sys

    from feeds.recording import RecordingError, read_recording
    from situation.replay import Replay, ReplayClock
    STARTUP.stage("recording")
    try:
        recording = read_recording(args.replay)
    except RecordingError as exc:
        raise ReplayOptionError(str(exc)) from None
    for problem in recording.problems:
        print(f"citywall: warning: {problem}", file=sys.stderr)
    start = recording.start_ms if args.start_ms is None else args.start_ms
    if not recording.start_ms <= start <= recording.end_ms:
        raise ReplayOptionError(
            f"--start {_iso(start)} is outside the recording ({_iso(recording.start_ms)} to "
            f"{_iso(recording.end_ms)})")
    clock = ReplayClock(recording.start_ms, args.speed)
    display = display_frame(args)
    situation = Situation(clock, locator=display_locator(display), limits=situation_limits(args),
                          scope=Scope.of(getattr(args, "districts", None)))
    client = exercise = None
    if args.training:
        from feeds.dispatch_client import DispatchClient
        from feeds.training import TrainingDesk
        from situation.training import Exercise
        ctx = zmq.Context.instance()
        desk = TrainingDesk(TRAINING_DISPATCH, ctx)
        exercise = Exercise(situation, desk, console_id=args.console_id)
        # The guard in the client refuses any endpoint but an in-process one in TRAINING.
        client = DispatchClient(TRAINING_DISPATCH, args.console_id, clock_ms=clock.now_ms,
                                context=ctx, mode="TRAINING")
    # Keyframes beside the recording (when its directory can be written): the next console
    # that opens it jumps at once (situation.keyframes).
    replay = Replay(recording, situation, max_record_bytes=args.max_record_bytes,
                    exercise=exercise, display_crs=display, keyframe_file=exercise is None)
    if start != recording.start_ms:
        clock.pause(True)
        replay.seek(start)
        clock.pause(False)
    return Session(clock, situation, [replay], "TRAINING" if args.training else "REPLAY",
                   client=client, replay=replay, exercise=exercise, faults=situation.faults)


class ReplayOptionError(ValueError):
    """A replay that cannot start: the command line exits 2 with this message."""


def _iso(ms: int) -> str:
    from datetime import datetime, timedelta, timezone
    return datetime.fromtimestamp(ms / 1000, timezone(timedelta(hours=8))).strftime(
        "%Y-%m-%d %H:%M:%S")


def join_mid_shift(client, situation: Situation, display: str = "gcj02",
                   timeout_s: float = 3.0) -> int | None:
    """A console started mid-shift asks the dispatch service for every open case and unit, so
    it shows them at once instead of waiting for each to change; the feed then carries on from
    the snapshot's seq (records at or below it are already held: upserts make them harmless).
    The seq, or None when the service did not answer (said on stderr; the console runs on)."""
    import sys
    try:
        snap = client.snapshot(timeout_s)
    except (TimeoutError, RuntimeError) as exc:
        print(f"citywall: warning: no snapshot from the dispatch service: {exc}", file=sys.stderr)
        return None
    records = [*snap.cases, *snap.units]
    if display != PROTOCOL_DEFAULT:         # the service holds the protocol's frame
        records, refused = reframe(records, PROTOCOL_DEFAULT, display)
        situation.rejected[OUTSIDE] += len(refused)
    situation.load(records)
    return snap.seq


def write_json_atomic(path: str | os.PathLike, doc: dict) -> None:
    """Write then rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:       # a string no input check caught: escaped, not fatal
        text = json.dumps(doc, ensure_ascii=True, indent=1)
    write_text_atomic(path, text)
