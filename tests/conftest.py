"""Shared test set-up: offscreen Qt, and a real publisher on loopback."""
from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
# Per-user state (the keyframe signing key, a dispatch database's default place) in a
# directory of the run's own, never the user's home; subprocesses inherit it.
if "CITYWALL_TEST_STATE" not in os.environ:
    import tempfile
    os.environ["CITYWALL_TEST_STATE"] = os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(
        prefix="citywall-test-state-")

import pytest  # noqa: E402

from widgets.tiles import register_scheme  # noqa: E402

register_scheme()          # Qt wants custom URL schemes known before the application exists

from tests.pubhelp import TestPublisher  # noqa: E402


@pytest.fixture
def publisher():
    pub = TestPublisher()
    yield pub
    pub.close()


def pytest_collection_finish(session):
    # What the imports and the collection made lives for the whole run: out of the cycle
    # collector's way, so the collections below cost what the tests made, not the libraries.
    gc.freeze()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    """A test's wall and its windows refer to each other: when the test returns they are
    garbage in a cycle, freed whenever Python's cycle collector next runs — which can be in
    the middle of painting one of those windows (pytest-qt processes events next), and Qt
    then paints freed graphics items and crashes. Collect them here, between events."""
    try:
        return (yield)
    finally:
        gc.collect()


@pytest.fixture(autouse=True)
def _cycles_collected_after_the_fixtures():
    """The same for what the test's fixtures held: set up first, so torn down last, before
    pytest-qt processes the events left."""
    yield
    gc.collect()


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
