#!/usr/bin/env python
"""Do CityWall recordings open in another MCAP reader? Prints what it finds; never asserts.

    (cd /tmp/mcapjs && npm install @mcap/core @mcap/support)     # once, outside the project
    .venv/bin/python bench/mcap_interop.py [--js-dir /tmp/mcapjs]

The other reader is the official TypeScript one (@mcap/core, what Foxglove uses), run with node:
its indexed reader (summary and chunk indexes) and its stream reader. The script makes a
recording with every odd kind of message (bad JSON, 3 frames, an unknown topic), a long one
with a chunk a second, and a copy cut in half, and compares each message (topic, log time,
publish time, bytes) with ``feeds.recording.read_recording``.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from feeds.record import Recorder, RollingRecorder  # noqa: E402
from feeds.recording import RAW_TOPIC, pack_frames, read_recording  # noqa: E402
from tests.pubhelp import record  # noqa: E402

T0 = 1_795_622_400_000          # 2026-11-25T16:00Z

JS = r"""
const fs = require("fs");
const { McapIndexedReader, McapStreamReader } = require("@mcap/core");
const { loadDecompressHandlers } = require("@mcap/support");
(async () => {
  const [mode, path] = process.argv.slice(2);
  const decompressHandlers = await loadDecompressHandlers();
  const rows = [];
  const emit = (ch, m) => rows.push(JSON.stringify([ch.topic, Number(m.logTime / 1000000n),
    Number(m.publishTime / 1000000n), Buffer.from(m.data).toString("base64")]));
  let note = "";
  try {
    if (mode === "indexed") {
      const fd = fs.openSync(path, "r");
      const readable = { size: async () => BigInt(fs.fstatSync(fd).size),
        read: async (offset, length) => { const b = Buffer.alloc(Number(length));
          fs.readSync(fd, b, 0, Number(length), Number(offset)); return b; } };
      const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
      for await (const m of reader.readMessages()) emit(reader.channelsById.get(m.channelId), m);
      note = `${reader.chunkIndexes.length} chunks indexed`;
    } else {
      const reader = new McapStreamReader({ decompressHandlers, validateCrcs: true });
      reader.append(fs.readFileSync(path));
      const channels = new Map();
      for (let r; (r = reader.nextRecord()); ) {
        if (r.type === "Channel") channels.set(r.id, r);
        else if (r.type === "Message") emit(channels.get(r.channelId), r);
      }
      note = reader.done() ? "read to the end" : "stopped before the end";
    }
  } catch (e) { note = `error: ${e.message}`; }
  console.error(note);
  process.stdout.write(rows.join("\n"));
})();
"""


def ours(path: Path):
    r = read_recording(path)
    rows = []
    for i in range(len(r)):
        t = r.topic_idx[i]
        topic, data = ((r.topics[t].decode(), r.payloads[i]) if t >= 0
                       else (RAW_TOPIC, pack_frames(r.frames(i))))
        rows.append((topic, int(r.log_ms[i]), int(r.publish_ms[i]), data))
    return rows, r.problems


def theirs(script: Path, js_dir: Path, mode: str, path: Path):
    env = dict(os.environ, NODE_PATH=str(js_dir / "node_modules"))
    proc = subprocess.run(["node", str(script), mode, str(path)], capture_output=True,
                          text=True, env=env, timeout=120)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line]
    return [(t, log, pub, base64.b64decode(d)) for t, log, pub, d in rows], proc.stderr.strip()


def make_recordings(where: Path) -> list[Path]:
    odd = where / "odd.mcap"
    ticks = iter(range(T0, T0 + 10**9, 7))
    rec = Recorder(odd, now_ms=lambda: next(ticks), timer=False)
    for frames, ts in [([b"hb", json.dumps(record("hb", ts=T0)).encode()], T0),
                       ([b"case", b"{not json"], None), ([b"hb", b"x", b"y"], None),
                       (["东城".encode(), b"{}"], None), ([b"weather.rain", b"{}"], None),
                       ([b"sensor.air", json.dumps([record("sensor.air", seq=i, ts=T0 + i)
                                                    for i in range(100)]).encode()], T0)]:
        rec.tap("e", frames, ts)
    rec.close()
    now, mono = [T0], [0.0]
    rolling = RollingRecorder(where / "hourly", now_ms=lambda: now[0], mono=lambda: mono[0],
                              timer=False)
    for i in range(3000):                     # 50 minutes, a message and a flush a second
        now[0] += 1000
        mono[0] += 1.0
        rolling.tap("e", [b"hb", json.dumps(record("hb", seq=i, ts=now[0])).encode()], now[0])
    rolling.close()
    long = next((where / "hourly").glob("*.mcap"))
    cut = where / "cut-in-half.mcap"
    cut.write_bytes(long.read_bytes()[:long.stat().st_size // 2])
    return [odd, long, cut]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--js-dir", type=Path, default=Path(os.environ.get("MCAP_JS_DIR",
                                                                        "/tmp/mcapjs")))
    args = p.parse_args()
    if shutil.which("node") is None or not (args.js_dir / "node_modules/@mcap/core").is_dir():
        print(f"no node or no @mcap/core in {args.js_dir}: see the top of this file")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        script = where / "read.cjs"
        script.write_text(JS)
        for path in make_recordings(where):
            mine, problems = ours(path)
            print(f"{path.name}: {len(mine)} messages by read_recording"
                  f"{' (' + '; '.join(problems) + ')' if problems else ''}")
            for mode in ("indexed", "stream"):
                got, note = theirs(script, args.js_dir, mode, path)
                same = "identical" if got == mine else "DIFFERENT"
                print(f"  @mcap/core {mode}: {len(got)} messages, {same}; {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
