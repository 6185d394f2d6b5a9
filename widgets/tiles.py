"""Local basemap tiles: an XYZ URL template on the local network, or an ``.mbtiles`` file
(SQLite, MBTiles 1.3) that the app serves to the page itself through an ``mbtiles:`` URL
scheme. A source that cannot be used says why, and the map falls back to the districts."""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtWebEngineCore import (QWebEngineUrlRequestJob, QWebEngineUrlScheme,
                                     QWebEngineUrlSchemeHandler)

from widgets.i18n import tr

SCHEME = b"mbtiles"
MBTILES_URL = "mbtiles:/{z}/{x}/{y}"


def register_scheme() -> None:
    """Must run before the QApplication exists (Qt's rule for custom schemes)."""
    if QWebEngineUrlScheme.schemeByName(SCHEME).name() == SCHEME:
        return
    scheme = QWebEngineUrlScheme(SCHEME)
    scheme.setSyntax(QWebEngineUrlScheme.Syntax.Path)
    scheme.setFlags(QWebEngineUrlScheme.Flag.LocalScheme
                    | QWebEngineUrlScheme.Flag.LocalAccessAllowed)
    QWebEngineUrlScheme.registerScheme(scheme)


class MbtilesHandler(QWebEngineUrlSchemeHandler):
    def __init__(self, path: Path, parent=None):
        super().__init__(parent)
        # Read-only, and usable from Qt's IO thread as well as the GUI thread.
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.served = 0

    def requestStarted(self, job: QWebEngineUrlRequestJob) -> None:
        parts = job.requestUrl().path().strip("/").split("/")
        try:
            z, x, y = (int(p.split(".")[0]) for p in parts[-3:])
            row = self.db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                (z, x, (1 << z) - 1 - y)).fetchone()      # MBTiles rows count from the south
        except (ValueError, sqlite3.Error):
            job.fail(QWebEngineUrlRequestJob.Error.RequestFailed)
            return
        if row is None:
            job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)
            return
        data = bytes(row[0])
        mime = b"image/png" if data[:4] == b"\x89PNG" else b"image/jpeg" if data[:2] == b"\xff\xd8" \
            else b"image/webp"
        buf = QBuffer(job)
        buf.setData(QByteArray(data))
        buf.open(QIODevice.ReadOnly)
        job.reply(mime, buf)
        self.served += 1


@dataclass
class TileSource:
    spec: str
    url: str | None = None
    problem: str | None = None         # why it cannot be used (shown on the map)
    handler: MbtilesHandler | None = None


def open_tile_source(spec: str | None, lang: str = "zh") -> TileSource | None:
    if not spec:
        return None
    if "{z}" in spec and "{x}" in spec and "{y}" in spec:
        if not re.match(r"^(https?|file)://", spec):
            return TileSource(spec, problem=tr("tiles.bad_url", lang, spec=spec))
        return TileSource(spec, url=spec)
    path = Path(spec)
    fallback = tr("tiles.fallback", lang)
    if not path.is_file():
        return TileSource(spec, problem=tr("tiles.not_found", lang, spec=spec) + fallback)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            n = db.execute("SELECT count(*) FROM tiles").fetchone()[0]
        finally:
            db.close()
        if not n:
            raise sqlite3.DatabaseError("no tiles")
    except sqlite3.Error as exc:
        return TileSource(spec, problem=tr("tiles.unusable", lang, spec=spec, exc=exc)
                          + fallback)
    return TileSource(spec, url=MBTILES_URL, handler=MbtilesHandler(path))


_installed: set[int] = set()


def install(profile, source: TileSource) -> None:
    if source.handler is not None and id(profile) not in _installed:
        profile.installUrlSchemeHandler(SCHEME, source.handler)
        _installed.add(id(profile))
