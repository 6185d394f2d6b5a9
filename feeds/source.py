"""What every source of records is to a wall: one small interface.

A source is anything that brings records — a ZeroMQ feed (``feeds.receiver``), an MQTT broker
(``feeds.mqtt_source``), a recording played back (``situation.replay``), the demo city
(``feeds.demo_source``). The situation, the Qt bridge and the headless loop take from every
source the same way and never ask which kind it is:

- ``start()`` opens it (sockets, threads, files) and returns it; a source that cannot start
  raises ``OSError`` (or ``ValueError`` for a setting that cannot be used) before anything runs;
- ``take()`` returns one ``feeds.batch.Batch`` with everything that arrived since the last call
  (records already in the wall's display frame, refusals counted by ``(src, reason)``, the
  endpoints heard in ``batch.endpoints``). It never blocks and never raises for what a sender
  did; it is called from one thread, at the consumer's own bounded rate;
- ``health()`` is a small JSON-able dict for the wall's status: at least ``kind``, ``name``
  and ``up`` (False when the source knows it is not hearing anything);
- ``endpoints`` names what the wall should show up or down (a link silent for 3 s is down);
- ``stop()`` closes it; calling it twice is harmless.

A new kind of source is one module with a class that has these members.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from feeds.batch import Batch


@runtime_checkable
class Source(Protocol):
    name: str
    endpoints: list[str]

    def start(self) -> "Source": ...

    def take(self) -> Batch: ...

    def health(self) -> dict: ...

    def stop(self) -> None: ...


def take_all(sources, faults=None) -> Batch:
    """One batch from every source, in order (the bridge's and the headless loop's drain). A
    source whose ``take()`` raises costs only itself: a fault (``feeds.faults.Faults``) named
    after it, and what the others handed over is kept."""
    merged = Batch()
    for source in sources:
        try:
            merged.merge(source.take())
        except Exception as exc:
            if faults is None:
                raise
            faults.record(f"source {getattr(source, 'name', '?')}", exc)
    return merged
