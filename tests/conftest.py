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
