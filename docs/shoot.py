"""Re-take the README's screenshots: every preset at 1920×1080, in zh and en.

    .venv/bin/python docs/shoot.py [--only NAME] [--out docs/shots]

Runs ``main.py`` offscreen (Qt's offscreen platform, with a screen config of one, two or three
1920×1080 screens side by side) on the demo city at 18:20 Beijing time, lets it run, and saves
one PNG per screen window (``--screenshot-dir``). The replay and training shots replay an
eight-hour demo day written by ``python -m feeds.demo_day`` into a temporary directory.
Nothing here is used by the wall; it is how the pictures in the README were made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "2026-11-27T18:20:00+08:00"
DAY_START = "2026-11-27T08:00:00+08:00"


def screens(n: int) -> list[dict]:
    return [{"name": f"screen{i}", "x": 1920 * i, "y": 0, "width": 1920, "height": 1080,
             "logicalDpiX": 96, "logicalDpiY": 96} for i in range(n)]


SHOTS = {           # name → (screens, extra arguments)
    "wall-1": (1, ["--demo"]),
    "wall-2": (2, ["--demo"]),
    "wall-3": (3, ["--demo"]),
    "console": (1, ["--demo", "--console"]),
    "night": (1, ["--demo", "--layout", "night"]),
    "district": (1, ["--demo", "--districts", "110101,110105"]),   # a district wall (#15)
    "wall-5": (5, ["--demo"]),            # screens 4 and 5: patrol coverage, case heat
    "handover": (1, ["--demo", "--shifts", "shifts", "--start", "2026-11-27T15:59:56+08:00"]),
    "replay": (1, ["--replay", "{day}", "--speed", "64", "--start", "2026-11-27T12:00:00+08:00"]),
    "training": (1, ["--replay", "{day}", "--training", "--speed", "16",
                     "--start", "2026-11-27T12:00:00+08:00"]),
}


ONLY_SCREENS = {"wall-5": (4, 5)}     # screens 1–3 of five are the three-screen wall's


def shoot(name: str, lang: str, out: Path, day: Path | None, tmp: Path) -> list[Path]:
    n, extra = SHOTS[name]
    config = tmp / f"screens-{n}.json"
    config.write_text(json.dumps({"screens": screens(n)}))
    # A fresh settings folder: the console opens as it does the first time, not as left.
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}",
               XDG_CONFIG_HOME=str(tmp / "config"))
    env.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
    shots = tmp / f"{name}-{lang}"
    shutil.rmtree(shots, ignore_errors=True)
    args = [a.replace("{day}", str(day)) for a in extra]
    if "--replay" not in args:
        args += ([] if "--start" in args else ["--start", START]) + ["--speed", "1", "--seed", "7"]
    cmd = [sys.executable, str(ROOT / "main.py"), *args, "--lang", lang, "--run-for", "12",
           "--screenshot-dir", str(shots)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=180,
                   stdout=subprocess.DEVNULL)
    saved = []
    for i, png in enumerate(sorted(shots.glob("wall-*.png"))):
        if name in ONLY_SCREENS and i + 1 not in ONLY_SCREENS[name]:
            continue            # the same screens as a smaller wall's
        target = out / (f"{name}-{lang}.png" if n == 1 else f"{name}-{i + 1}-{lang}.png")
        shutil.copy(png, target)
        saved.append(target)
    return saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "shots"))
    ap.add_argument("--only", action="append", choices=sorted(SHOTS))
    ap.add_argument("--lang", action="append", choices=["zh", "en"])
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = a.only or list(SHOTS)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        day = None
        if any("--replay" in SHOTS[nm][1] for nm in names):
            day = tmp / "day.mcap"
            subprocess.run([sys.executable, "-m", "feeds.demo_day", "--hours", "8",
                            "--start", DAY_START, "--out", str(day)],
                           cwd=ROOT, check=True, timeout=600, stdout=subprocess.DEVNULL)
        for nm in names:
            for lang in a.lang or ["zh", "en"]:
                for p in shoot(nm, lang, out, day, tmp):
                    print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p, flush=True)


if __name__ == "__main__":
    main()
