"""Command-line argument types shared by ``main.py`` and ``python -m feeds.simulator``: a bad
value becomes one clear line and exit code 2."""
from __future__ import annotations

import argparse
from datetime import datetime
from zoneinfo import ZoneInfo

from feeds.endpoints import check_endpoint

EXIT_USAGE = 2
CITY_TZ = ZoneInfo("Asia/Shanghai")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def endpoint(text: str) -> str:
    try:
        return check_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than zero: {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero: {text}")
    return value


def time_ms(text: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time (Beijing time if no zone)."""
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use ISO 8601 like 2026-11-24T08:00 or ms since the epoch)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CITY_TZ)
    return int(dt.timestamp() * 1000)


def port_number(text: str) -> int:
    """A TCP port to listen on: 1–65535."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535: {text}")
    return value


def district_list(text: str) -> tuple[str, ...]:
    """``110101,110105``: adcodes of the city's districts, each known (feeds.districts)."""
    from feeds.districts import by_adcode
    known = by_adcode()
    codes = tuple(dict.fromkeys(c.strip() for c in str(text).split(",") if c.strip()))
    if not codes:
        raise argparse.ArgumentTypeError("no district given (adcodes like 110101,110105)")
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown district {', '.join(unknown)[:200]} (known: {', '.join(sorted(known))})")
    return codes


def frame_name(text: str) -> str:
    """A coordinate frame: ``wgs84`` or ``gcj02`` (``feeds.crs``)."""
    from feeds.crs import check_frame
    try:
        return check_frame(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
