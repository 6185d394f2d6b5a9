"""Rules of the code base that a test can hold: no Qt in the core, a PySide6 that survives
many signal emits."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_qt_imported_by_feeds_and_situation():
    """Every module of feeds/ and situation/ imports no Qt, directly or through another."""
    modules = sorted(f"{p.parent.name}.{p.stem}" for pkg in ("feeds", "situation")
                     for p in (ROOT / pkg).glob("*.py") if p.stem != "__init__")
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "qt = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph'))\n"
            "print(','.join(qt))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"Qt imported by the core: {out.stdout.strip()}"


def test_no_wall_clock_in_domain_code():
    """Domain logic asks the situation's clock; only the clock itself and a process's start-up
    read the wall."""
    allowed = {"situation/clock.py"}
    offenders = []
    for pkg in ("situation", "widgets"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("time", "now", "utcnow") \
                        and isinstance(node.value, (ast.Name, ast.Attribute)) \
                        and getattr(node.value, "id", getattr(node.value, "attr", "")) in (
                            "time", "datetime"):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_pyside6_survives_thousands_of_signal_emits():
    """PySide6 6.12.0 on Python 3.11 aborts after a few hundred emits (bool_dealloc)."""
    code = ("from PySide6.QtCore import QObject, Signal, QCoreApplication\n"
            "class O(QObject):\n    s = Signal(object)\n    b = Signal(bool)\n"
            "app = QCoreApplication([]); o = O(); seen = []\n"
            "o.s.connect(lambda x: seen.append(x)); o.b.connect(lambda x: None)\n"
            "for i in range(5000):\n    o.s.emit(i); o.b.emit(i % 2 == 0)\n"
            "print(len(seen))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "5000"
