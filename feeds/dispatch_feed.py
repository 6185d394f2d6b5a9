"""The dispatch service's feed: what it has committed, sent on its XPUB, in seq order.

A mixin of ``DispatchService`` (``feeds.dispatch_service``), holding the feed's side of the
service: consoles joining, the hold after a start, publishing committed records, heartbeats,
and carrying the feed on from the last run (records committed but never sent go out first,
with their own seqs). It works on the service's state — ``_feed`` (the XPUB), ``seq``,
``published``, ``_unsent``, ``_feed_open``, ``_next_hb``, ``storage`` — and reports storage
trouble through the service's ``_storage_failed``. Kept apart so the service module holds the
loop, and this one the rules of the feed (gap-free seqs across restarts: see the service's
module text and ``feeds.dispatch_store``).
"""
from __future__ import annotations

import logging

import msgspec
import zmq

from feeds.dispatch_store import StorageError, Stored
from feeds.schema import Heartbeat, Record, frames

LOG = logging.getLogger("feeds.dispatch")


class FeedPublishing:
    """The feed's half of ``DispatchService``: a mixin, no state of its own."""

    def _consoles_joined(self) -> None:
        joined = False
        while True:
            try:
                msg = self._feed.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            joined |= msg[:1] == b"\x01"
        if joined:
            self._next_hb = 0.0      # greet at once: a console knows it is connected
            if not self._feed_open:
                self._open_feed()

    def _open_feed(self) -> None:
        """A console is listening (or none came back in time): send what waited."""
        self._feed_open = True
        self._next_hb = 0.0
        self._publish([])

    def _publish(self, records: list[Record]) -> None:
        """Send committed records on the feed, after any still waiting, and mark them
        published; while the feed is held they wait."""
        self._unsent += records
        if not self._feed_open or not self._unsent:
            return
        waiting, self._unsent, n = self._unsent, [], 0
        try:
            for rec in waiting:
                self._feed.send_multipart(frames(rec))
                n += 1
        finally:
            self._unsent = waiting[n:] + self._unsent      # what did not leave waits
            if n:
                self._sent(waiting[n - 1].seq)
        if self.storage.conn is not None:
            try:
                self.storage.mark_published(self.published)
            except StorageError as exc:
                self._storage_failed(exc)

    def _sent(self, seq: int) -> None:
        self.published = seq
        self._sent_any = True

    def _heartbeat(self) -> None:
        self.seq += 1
        if self.storage.conn is not None:
            try:
                # Stored before it is sent, and marked sent with it: it carries nothing, so
                # should the process die in the microseconds before it leaves, consoles see
                # one seq skipped, never a record lost or a seq used twice.
                self.storage.write(seq=self.seq, published=self.seq)
            except StorageError as exc:
                self._storage_failed(exc)
        self._feed.send_multipart(frames(Heartbeat(v=1, src=self.src, seq=self.seq,
                                                   ts=self.now_ms())))
        self._sent(self.seq)

    def _resume(self, stored: Stored) -> None:
        """Carry the feed on from the last run: the records it committed but never sent go
        out first. Their seqs follow the last one sent, which is what consoles expect next;
        should the feed already have moved on in this run (the database opened late) or the
        log have a hole, they get new seqs after everything given out instead."""
        last = -1 if stored.seq is None else stored.seq
        published = last if stored.published is None else stored.published
        unsent = self.storage.changes_after(published)
        own = [r.seq for r in unsent] == list(range(published + 1, published + 1 + len(unsent)))
        if own and not self._sent_any:
            self.seq = max(self.seq, published + len(unsent))
            self.published = published
        else:
            base = max(self.seq, last)
            unsent = [msgspec.structs.replace(r, seq=base + i + 1) for i, r in enumerate(unsent)]
            self.seq = base + len(unsent)
        if unsent:
            LOG.warning("%d records committed but not published before the last stop: "
                        "publishing them first (seq %d-%d)", len(unsent), unsent[0].seq,
                        unsent[-1].seq)
            self.counts["republished"] += len(unsent)
        self._unsent[:0] = unsent
        if self._feed_open:
            self._publish([])
