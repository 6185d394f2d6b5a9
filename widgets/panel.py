"""What every wall panel shares: a framed box with a title and a one-line summary, and the
contract with the window: ``on_changed(change)`` marks what moved, ``refresh()`` redraws from
the situation (the window calls it a few times a second at most, however fast the feed runs).

Panels hold no state of their own: every refresh derives what to draw from the situation.
"""
from __future__ import annotations

import html

from typing import NamedTuple

from PySide6.QtCore import (QAbstractTableModel, QByteArray, QMimeData, QModelIndex, QSize, Qt,
                            Signal)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QHBoxLayout, QHeaderView, QLabel,
                               QTableView, QVBoxLayout, QWidget)

from situation.store import Change, Situation
from widgets import theme
from widgets.i18n import tr


class Panel(QFrame):
    name = "panel"          # the registry key; also the i18n key ``panel.<name>``

    def __init__(self, situation: Situation, lang: str = "zh", parent: QWidget | None = None):
        super().__init__(parent)
        self.situation = situation
        self.lang = lang
        self.dirty = True
        self.setObjectName("panel")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 14, 12)
        outer.setSpacing(8)
        head = QHBoxLayout()
        self.title = QLabel(tr(f"panel.{self.name}", lang))
        self.title.setObjectName("panelTitle")
        self.title.setFont(theme.font(26, bold=True))
        self.summary = QLabel("")
        self.summary.setObjectName("panelSummary")
        self.summary.setFont(theme.font(20))
        self.summary.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.summary)
        outer.addLayout(head)
        self.body = outer

    def on_changed(self, change: Change) -> None:
        self.dirty = True

    def sizeHint(self) -> QSize:
        # The same modest hint for every panel, so a layout's stretches decide the sizes,
        # not whichever panel happens to ask for more.
        return QSize(320, 240)

    def refresh(self) -> None:
        """Redraw from the situation. Called on a timer and on every clock tick."""


class Cell(NamedTuple):
    text: str
    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    tip: str | None = None


class RowsModel(QAbstractTableModel):
    """Rows of cells as the panel last derived them; keyed so a selection survives a
    re-sort."""

    def __init__(self, headers: list[str], parent=None):
        super().__init__(parent)
        self.headers = headers
        # Drag and drop (dispatch): rows carry their key as ``drag_mime``; a drop of
        # ``accept_mime`` on a row calls ``on_drop(row key, dropped key)``.
        self.drag_mime: str | None = None
        self.accept_mime: str | None = None
        self.on_drop = None
        self.keys: list[str] = []
        self.rows: list[list[Cell]] = []
        self._bold = theme.font(theme.BASE_PX + 2, bold=True)
        self._brushes: dict[str, QBrush] = {}

    def _brush(self, colour: str) -> QBrush:
        b = self._brushes.get(colour)
        if b is None:
            b = self._brushes[colour] = QBrush(QColor(colour))
        return b

    def set_rows(self, keys: list[str], rows: list[list[Cell]]) -> None:
        if keys == self.keys:
            self.rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0),
                                      self.index(len(rows) - 1, len(self.headers) - 1))
            return
        self.beginResetModel()
        self.keys, self.rows = keys, rows
        self.endResetModel()

    def flags(self, index):
        f = super().flags(index)
        if index.isValid():
            if self.drag_mime:
                f |= Qt.ItemIsDragEnabled
            if self.accept_mime:
                f |= Qt.ItemIsDropEnabled
        return f

    def mimeTypes(self) -> list[str]:
        return [m for m in (self.drag_mime, self.accept_mime) if m]

    def mimeData(self, indexes):
        data = QMimeData()
        rows = sorted({i.row() for i in indexes})
        if rows and self.drag_mime:
            data.setData(self.drag_mime, QByteArray(self.keys[rows[0]].encode("utf-8")))
        return data

    def supportedDragActions(self):
        return Qt.CopyAction

    def supportedDropActions(self):
        return Qt.CopyAction

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        return bool(self.accept_mime and data.hasFormat(self.accept_mime)
                    and (parent.isValid() or 0 <= row < len(self.keys)))

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent) or self.on_drop is None:
            return False
        target = self.keys[parent.row() if parent.isValid() else row]
        dropped = bytes(data.data(self.accept_mime)).decode("utf-8", "replace")
        self.on_drop(target, dropped)
        return False          # nothing moves in the table: the order goes out, the feed answers

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.headers[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        cell = self.rows[index.row()][index.column()]
        if role == Qt.DisplayRole:
            return cell.text
        if role == Qt.ForegroundRole and cell.fg:
            return self._brush(cell.fg)
        if role == Qt.BackgroundRole and cell.bg:
            return self._brush(cell.bg)
        if role == Qt.FontRole and cell.bold:
            return self._bold
        if role == Qt.ToolTipRole and cell.tip:
            # Feed text is untrusted: forced rich text with everything escaped shows "<b>" as
            # the characters it is, never as markup.
            return "<qt>" + html.escape(cell.tip).replace("\n", "<br>") + "</qt>"
        if role == Qt.UserRole:
            return self.keys[index.row()]
        return None


class TablePanel(Panel):
    """A panel whose body is one read-only table; subclasses derive ``(keys, rows)``."""

    selected = Signal(str)        # a row's key, when a person picks it
    activated = Signal(str)       # a row's key, on double-click

    columns: tuple[str, ...] = ()          # i18n keys of the column headers
    stretch_column = 1
    # Type of the rows and of the column names. Given here, before the table is first
    # polished: a font set after the application's style sheet has polished a table is undone
    # by the next re-polish (a palette change re-dresses the application).
    table_px = theme.BASE_PX + 2
    header_px = 18

    def __init__(self, situation: Situation, lang: str = "zh", parent=None):
        super().__init__(situation, lang, parent)
        self.model = RowsModel([tr(c, lang) for c in self.columns], self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setFont(theme.font(self.table_px))
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(38)
        header = self.table.horizontalHeader()
        header.setFont(theme.font(self.header_px, bold=True))
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(self.stretch_column, QHeaderView.Stretch)
        header.setHighlightSections(False)
        # Said in a style sheet too: the application's style sheet re-polishes widgets when the
        # palette changes and puts back the fonts they were first polished with; a widget's
        # own style sheet outranks that.
        self.table.setStyleSheet(
            f"QTableView {{ font-size: {self.table_px}px; }}"
            f" QHeaderView, QHeaderView::section {{ font-size: {self.header_px}px;"
            f" font-weight: bold; }}")
        self.body.addWidget(self.table, 1)
        self._selected: str | None = None
        self.table.selectionModel().selectionChanged.connect(self._remember_selection)
        self.table.clicked.connect(lambda i: self.selected.emit(self.model.keys[i.row()]))
        self.table.doubleClicked.connect(lambda i: self.activated.emit(self.model.keys[i.row()]))

    def _remember_selection(self, *_):
        rows = self.table.selectionModel().selectedRows()
        self._selected = self.model.keys[rows[0].row()] if rows else None

    def derive(self, now: int) -> tuple[list[str], list[list[Cell]], str]:
        """(row keys, rows of cells, summary line) from the situation."""
        raise NotImplementedError

    def spans(self, keys: list[str]) -> dict[int, tuple[int, int]]:
        """Rows whose cell at ``column`` runs ``width`` columns wide."""
        return {}

    def refresh(self) -> None:
        keys, rows, summary = self.derive(self.situation.now_ms())
        reset = keys != self.model.keys
        self.model.set_rows(keys, rows)
        if reset:
            self.table.clearSpans()
            for row, (column, width) in self.spans(keys).items():
                self.table.setSpan(row, column, 1, width)
        self.summary.setText(summary)
        if reset and self._selected in keys:
            self.table.selectRow(keys.index(self._selected))
        self.dirty = False

    def selected_key(self) -> str | None:
        return self._selected

    def enable_drag_drop(self, drag_mime: str, accept_mime: str, on_drop) -> None:
        """Rows can be dragged out as ``drag_mime``; ``accept_mime`` dropped on a row calls
        ``on_drop(row key, dropped key)``."""
        self.model.drag_mime, self.model.accept_mime = drag_mime, accept_mime
        self.model.on_drop = on_drop
        t = self.table
        t.setDragEnabled(True)
        t.setAcceptDrops(True)
        t.viewport().setAcceptDrops(True)
        t.setDropIndicatorShown(True)
        t.setDragDropMode(QAbstractItemView.DragDrop)
        t.setDefaultDropAction(Qt.CopyAction)

