"""What every wall panel shares: a framed box with a title and a one-line summary, and the
contract with the window: ``on_changed(change)`` marks what moved, ``refresh()`` redraws from
the situation (the window calls it a few times a second at most, however fast the feed runs).

Panels hold no state of their own: every refresh derives what to draw from the situation.
"""
from __future__ import annotations

import html
import weakref

from typing import NamedTuple

from PySide6.QtCore import (QAbstractTableModel, QByteArray, QMimeData, QModelIndex, QSize, Qt,
                            Signal)
from PySide6.QtGui import QBrush, QColor, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QBoxLayout, QFrame, QHeaderView, QLabel,
                               QStyle, QTableView, QVBoxLayout, QWidget)

from feeds.districts import frame_of
from situation.store import Change, Situation
from widgets import theme
from widgets.i18n import tr


class PanelTitle(QLabel):
    """A panel's title line. Where something else names the panel (a console dock's title
    bar: ``Panel.titled_by_dock``) it stays hidden, whoever asks to show it."""

    def __init__(self, text: str, panel: "Panel"):
        super().__init__(text)
        self._panel = weakref.ref(panel)        # no cycle with its panel (see WallTable)

    def setVisible(self, visible: bool) -> None:
        panel = self._panel()
        super().setVisible(visible and not (panel is not None and panel.titled_by_dock))


class Panel(QFrame):
    name = "panel"          # the registry key; also the i18n key ``panel.<name>``
    head_reserve = 0        # px kept free after the title (a rotation's page mark sits there)
    summary_in_title_bar = False    # a console dock shows the summary in its title bar
    # A console dock's title bar names the panel: its own title (and any other label a panel
    # shows its name in) stays hidden, so the name is said once.
    titled_by_dock = False

    @property
    def crs(self) -> str:
        """The display frame of the situation shown (its locator's: ``frame_of``): every
        district outline, bbox and grid a panel draws is in it."""
        return frame_of(self.situation)

    def __init__(self, situation: Situation, lang: str = "zh", parent: QWidget | None = None):
        super().__init__(parent)
        self.situation = situation
        self.lang = lang
        self.dirty = True
        self.setObjectName("panel")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 14, 12)
        outer.setSpacing(8)
        head = self.head = QBoxLayout(QBoxLayout.LeftToRight)
        self.title = PanelTitle(tr(f"panel.{self.name}", lang), self)
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

    def fit_head(self) -> None:
        """Title and summary side by side when both fit the panel's width; otherwise the
        summary goes under the title (left-aligned) and, if it is wider than the panel on its
        own, wraps at its spaces — never clipped."""
        if self.summary_in_title_bar:
            return
        m = self.contentsMargins()
        lm = self.body.contentsMargins()
        room = self.width() - m.left() - m.right() - lm.left() - lm.right()
        if room <= 0:
            return
        title = (self.title.sizeHint().width() if self.title.isVisibleTo(self) else 0) \
            + self.head_reserve
        text = self.summary.text()
        want = self.summary.fontMetrics().horizontalAdvance(text) + 4 if text else 0
        side = not text or title + self.head.spacing() + want <= room
        wrap = not side and want > room
        direction = QBoxLayout.LeftToRight if side else QBoxLayout.TopToBottom
        if self.head.direction() != direction:
            self.head.setDirection(direction)
            self.summary.setAlignment((Qt.AlignRight if side else Qt.AlignLeft)
                                      | Qt.AlignVCenter)
        if self.summary.wordWrap() != wrap:
            self.summary.setWordWrap(wrap)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_head()

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

    def __init__(self, headers: list[str], parent=None, bold_px: int = theme.BASE_PX + 4):
        super().__init__(parent)
        self.headers = headers
        # Drag and drop (dispatch): rows carry their key as ``drag_mime``; a drop of
        # ``accept_mime`` on a row calls ``on_drop(row key, dropped key)``.
        self.drag_mime: str | None = None
        self.accept_mime: str | None = None
        self.on_drop = None
        self.keys: list[str] = []
        self.rows: list[list[Cell]] = []
        self._bold = theme.font(bold_px, bold=True)
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
        if role == Qt.ToolTipRole:
            # A long value a capped column may cut reads whole here, above any tip of its own.
            # Feed text is untrusted: forced rich text with everything escaped shows "<b>" as
            # the characters it is, never as markup.
            parts = [cell.text] if len(cell.text) > LONG_CELL_CHARS else []
            if cell.tip and cell.tip not in parts:
                parts.append(cell.tip)
            return ("<qt>" + html.escape("\n".join(parts)).replace("\n", "<br>") + "</qt>"
                    if parts else None)
        if role == Qt.UserRole:
            return self.keys[index.row()]
        return None


COLUMN_CAP_EM = 11          # no column wider than this many of its type's px (an outlier)
LONG_CELL_CHARS = 12        # a longer value without a tooltip of its own gets itself as one
CELL_SLACK_PX = 4           # beyond the delegate's own margins: a kept value never touches the edge
HEADER_PAD_PX = 2 * 8 + 4   # QHeaderView::section padding (theme.style: 4px 8px) and its border
SORT_MARK_PX = 24           # a header that shows a sort indicator


def cell_margin(view) -> int:
    """The horizontal room a table's delegate takes from a cell (left and right together):
    QStyledItemDelegate draws text inside ``PM_FocusFrameHMargin + 1`` on each side."""
    return 2 * (view.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, view) + 1)


class WallTable(QTableView):
    """The panels' table: it tells its panel when its width changed, so the kept columns
    are chosen again (TablePanel.fit_columns)."""

    def __init__(self, on_resize, parent=None):
        super().__init__(parent)
        # Weakly: a table and its panel must not hold each other in a reference cycle (the
        # cycle collector would free them in whatever order, under Qt's feet: a crash).
        self._on_resize = weakref.WeakMethod(on_resize)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            fit = self._on_resize()
            if fit is not None:
                fit()

    def _shown(self, index):
        """``index``, or — in a column dropped for room — its row's first shown cell."""
        if index.isValid() and self.isColumnHidden(index.column()):
            header = self.horizontalHeader()
            for visual in range(header.count()):
                column = header.logicalIndex(visual)
                if not self.isColumnHidden(column):
                    return index.siblingAtColumn(column)
        return index

    def visualRect(self, index):
        """A cell of a column dropped for room is in its row: its rect is the row's first
        shown cell, so whatever aims at it (a drop, a pick, scrolling to it) lands on its
        row."""
        return super().visualRect(self._shown(index))

    def scrollTo(self, index, hint=QAbstractItemView.EnsureVisible):
        super().scrollTo(self._shown(index), hint)


class TablePanel(Panel):
    """A panel whose body is one read-only table; subclasses derive ``(keys, rows)``.

    Columns a table has no room for are dropped, least important first (``priority``), and
    the table's header and the panel's summary say which in their tooltip ("隐藏列：来源、上报")
    — a value is never cut short: every kept column is as wide as its widest value and its
    name (measured with QFontMetrics, with the delegate's margins), the ``stretch_column``
    takes what is left."""

    selected = Signal(str)        # a row's key, when a person picks it
    activated = Signal(str)       # a row's key, on double-click

    columns: tuple[str, ...] = ()          # i18n keys of the column headers
    # The columns most worth keeping first (i18n keys of ``columns``); any not named follow in
    # their own order. Columns are kept in this order while they fit; the first that does not
    # fit, and every one after it, is hidden.
    priority: tuple[str, ...] = ()
    stretch_column = 1
    # Type of the rows and of the column names, for a commander four metres from a 55-inch
    # 1080p screen: rows 24 px, column names 20 px. Given here, before the table is first
    # polished: a font set after the application's style sheet has polished a table is undone
    # by the next re-polish (a palette change re-dresses the application).
    table_px = 24
    header_px = 20

    def __init__(self, situation: Situation, lang: str = "zh", parent=None):
        super().__init__(situation, lang, parent)
        self.model = RowsModel([tr(c, lang) for c in self.columns], self, bold_px=self.table_px)
        self.table = WallTable(self.fit_columns)
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
        row = QFontMetrics(theme.font(self.table_px, bold=True)).height() + 10
        self.table.verticalHeader().setMinimumSectionSize(row)
        self.table.verticalHeader().setDefaultSectionSize(row)
        header = self.table.horizontalHeader()
        header.setFont(theme.font(self.header_px, bold=True))
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.Fixed)
        header.setMinimumSectionSize(8)
        header.setHighlightSections(False)
        # Said in a style sheet too: the application's style sheet re-polishes widgets when the
        # palette changes and puts back the fonts they were first polished with; a widget's
        # own style sheet outranks that.
        self.table.setStyleSheet(
            f"QTableView {{ font-size: {self.table_px}px; }}"
            f" QHeaderView, QHeaderView::section {{ font-size: {self.header_px}px;"
            f" font-weight: bold; }}")
        self.body.addWidget(self.table, 1)
        self.hidden_columns: list[str] = []      # i18n keys of the columns dropped for room
        self._advances: dict[tuple[str, bool], int] = {}
        self._fonts = (QFontMetrics(theme.font(self.table_px)),
                       QFontMetrics(self.model._bold),
                       QFontMetrics(theme.font(self.header_px, bold=True)))
        self._selected: str | None = None
        self.table.selectionModel().selectionChanged.connect(self._remember_selection)
        self.table.clicked.connect(lambda i: self.selected.emit(self.model.keys[i.row()]))
        self.table.doubleClicked.connect(lambda i: self.activated.emit(self.model.keys[i.row()]))

    # ---- columns: keep what fits, most important first ------------------------------------
    def priority_order(self) -> list[int]:
        """Column indices, the one most worth keeping first."""
        named = [self.columns.index(k) for k in self.priority if k in self.columns]
        return named + [i for i in range(len(self.columns)) if i not in named]

    def _advance(self, text: str, bold: bool) -> int:
        key = (text, bold)
        w = self._advances.get(key)
        if w is None:
            if len(self._advances) > 20_000:
                self._advances.clear()
            fm = self._fonts[1] if bold else self._fonts[0]
            w = self._advances[key] = max((fm.horizontalAdvance(line)
                                           for line in text.split("\n")), default=0)
        return w

    def column_needs(self) -> list[int]:
        """Each column's width for its widest value and its name, margins included. Cells
        that run across several columns (``spans``) are left out: they have the room of all."""
        m = self.model
        t = self.table
        pad = cell_margin(t) + CELL_SLACK_PX
        head = self._fonts[2]
        sort_mark = SORT_MARK_PX if t.horizontalHeader().isSortIndicatorShown() else 0
        needs = [head.horizontalAdvance(h) + HEADER_PAD_PX + sort_mark for h in m.headers]
        spanned = {r for r in range(len(m.rows)) if t.columnSpan(r, 0) > 1} \
            if self._has_spans else set()
        for r, row in enumerate(m.rows):
            for c, cell in enumerate(row):
                if not cell.text or c >= len(needs):
                    continue
                if self._has_spans and (r in spanned or t.columnSpan(r, c) > 1):
                    continue
                w = self._advance(cell.text, cell.bold) + pad
                if w > needs[c]:
                    needs[c] = w
        # One outlier (a 200-character category, a callsign of 64 wide characters) must not
        # push every other column off the table: no column asks for more than COLUMN_CAP_EM
        # (or its name); a longer value is cut with "…" and reads whole in its tooltip.
        cap = round(COLUMN_CAP_EM * self.table_px)
        heads = [head.horizontalAdvance(h) + HEADER_PAD_PX + sort_mark for h in m.headers]
        return [min(need, max(cap, h)) for need, h in zip(needs, heads)]

    def table_room(self) -> int:
        """The width the columns share: the table's, less its frame and a vertical scroll
        bar's (kept free whether it shows or not, so a scroll bar never cuts a column)."""
        t = self.table
        bar = t.verticalScrollBar().sizeHint().width()
        return max(0, t.width() - 2 * t.frameWidth() - bar)

    _has_spans = False

    def fit_columns(self) -> None:
        """Keep the columns that fit, in priority order; hide the rest and say which."""
        t = self.table
        n = len(self.model.headers)
        if n == 0:
            return
        needs = self.column_needs()
        room = self.table_room()
        kept, used = [], 0
        for c in self.priority_order():
            if kept and used + needs[c] > room:
                break
            kept.append(c)
            used += needs[c]
        header = t.horizontalHeader()
        stretch = (self.stretch_column if self.stretch_column in kept
                   else max(kept, key=header.visualIndex))     # the last one shown
        for c in range(n):
            hide = c not in kept
            if t.isColumnHidden(c) != hide:
                t.setColumnHidden(c, hide)
            if hide:
                continue
            mode = QHeaderView.Stretch if c == stretch else QHeaderView.Fixed
            if header.sectionResizeMode(c) != mode:
                header.setSectionResizeMode(c, mode)
            if c != stretch and header.sectionSize(c) != needs[c]:
                t.setColumnWidth(c, needs[c])
        hidden = [self.columns[c] for c in range(n) if c not in kept]
        if hidden != self.hidden_columns:
            self.hidden_columns = hidden
            lead, sep = tr("hidden.lead", self.lang), tr("hidden.sep", self.lang)
            tip = lead + sep.join(self.model.headers[self.columns.index(k)]
                                  for k in hidden) if hidden else ""
            header.setToolTip(tip)
            self.summary.setToolTip(tip)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

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
            spans = self.spans(keys)
            for row, (column, width) in spans.items():
                self.table.setSpan(row, column, 1, width)
            self._has_spans = bool(spans)
        if summary != self.summary.text():
            self.summary.setText(summary)
            self.fit_head()
        self.fit_columns()
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

