"""Shared test set-up: offscreen Qt, and a real publisher on loopback."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")

import pytest  # noqa: E402

from widgets.tiles import register_scheme  # noqa: E402

register_scheme()          # Qt wants custom URL schemes known before the application exists

from tests.pubhelp import TestPublisher  # noqa: E402


@pytest.fixture
def publisher():
    pub = TestPublisher()
    yield pub
    pub.close()


@pytest.fixture(scope="session", autouse=True)
def _web_pages_go_before_the_application():
    """QtWebEngine wants every page deleted before its profile and the application go; left
    to interpreter shutdown, the order is arbitrary and the process can crash on exit after
    every test passed. Close and delete every widget, and let the deletions run, first."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance()
    if app is None:
        return
    for w in QApplication.topLevelWidgets():
        w.close()
        w.deleteLater()
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        app.processEvents()


_exit_status: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave with pytest's own exit status once everything is reported. QtWebEngine's C++
    teardown at interpreter exit happens in an arbitrary order and has crashed the process
    after every test passed (see the fixture above, which makes that rare); that crash is not
    a result of the suite. The app's own shutdown is checked by the tests that run main.py
    as a subprocess and assert its exit code."""
    import os
    import sys
    if _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
