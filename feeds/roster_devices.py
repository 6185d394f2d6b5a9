"""Which phone rides with which unit: the ``device`` column of the roster CSV. No Qt.

The roster (``--roster FILE``, also read by ``situation.peakduty.load_roster``) is
``unit_id,district,shift[,device]``; ``device`` is an OwnTracks ``USER/DEVICE`` (the last two
levels of its topic ``owntracks/USER/DEVICE``), empty for a unit without one. Only ``unit_id``
and ``device`` are read here; the other columns are peak duty's.

``load_devices(path)`` → ``{"USER/DEVICE": unit_id}``. Bounded (``MAX_BYTES``, ``MAX_ROWS``;
at most ``MAX_BYTES + 1`` bytes are ever read, whatever the file: a FIFO, ``/dev/zero``)
and strict: a file that cannot be read, has no ``unit_id`` column, a device that is not
``USER/DEVICE`` or one device given to two units raises ``ValueError`` (``OSError`` for a file
that cannot be opened) with the path and line, in one line. A roster without a ``device``
column maps nothing (an empty dict).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from feeds.bounds import valid_id

MAX_BYTES = 4 * 1024 * 1024
MAX_ROWS = 50_000


def check_device(device: str) -> bool:
    """``USER/DEVICE``: two non-empty levels, printable, no MQTT wildcard."""
    parts = device.split("/")
    return (len(parts) == 2 and all(parts) and valid_id(device)
            and not any(c in device for c in "+#\x00"))


def load_devices(path) -> dict[str, str]:
    path = Path(path)
    try:
        # Never more than MAX_BYTES + 1: stat() says 0 for a FIFO, /dev/zero or a /proc file.
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"{path}: roster larger than {MAX_BYTES // (1024 * 1024)} MiB "
                         f"({MAX_BYTES} bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return parse_devices(text, str(path))


def parse_devices(text: str, where: str = "roster") -> dict[str, str]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{where}: empty file (expected the columns "
                             "unit_id,district,shift[,device])")
        names = [h.strip() for h in header]
        if "unit_id" not in names:
            raise ValueError(f"{where}:1: no unit_id column (found {','.join(names)[:200]})")
        if "device" not in names:
            return {}
        i_unit, i_dev = names.index("unit_id"), names.index("device")
        out: dict[str, str] = {}
        for n, row in enumerate(reader, start=1):
            if n > MAX_ROWS:
                raise ValueError(f"{where}: more than {MAX_ROWS} rows")
            line = reader.line_num
            device = row[i_dev].strip() if i_dev < len(row) else ""
            if not device:
                continue
            unit = row[i_unit].strip() if i_unit < len(row) else ""
            if not valid_id(unit):
                raise ValueError(f"{where}:{line}: device {device[:80]!r} with no valid unit_id")
            if not check_device(device):
                raise ValueError(f"{where}:{line}: device {device[:80]!r} is not USER/DEVICE "
                                 "(the last two levels of its topic owntracks/USER/DEVICE)")
            if out.get(device, unit) != unit:
                raise ValueError(f"{where}:{line}: device {device!r} is given to two units, "
                                 f"{out[device]!r} and {unit!r}")
            out[device] = unit
        return out
    except csv.Error as exc:
        raise ValueError(f"{where}:{reader.line_num}: not CSV: {exc}") from None
