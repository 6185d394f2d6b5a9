"""The city-management workflow's configuration, shared by the dispatch service, the training
desk and the demo city: each case category's agency, priority, the unit kinds that can handle
it and its hours to resolve; the stage time limits; which unit statuses are busy. Local
practice differs: this is configuration, not protocol (../shared/PROTOCOL.md lists the
categories). The live services read it from here, never from the demo city. No Qt.
"""
from __future__ import annotations

MINUTE = 60_000
HOUR = 3_600_000
BUSY = frozenset({"dispatched", "en_route", "on_scene", "returning"})   # a unit working a case

# category → (agency, priority, unit kinds that can handle it, hours to resolve)
CATEGORY_RULES = {
    "event.city_appearance.exposed_garbage": ("环卫", 3, ("sanitation", "foot_patrol"), 4),
    "event.city_appearance.illegal_building": ("城管执法", 2, ("enforcement",), 4),
    "event.advertising.illegal_flyers": ("城管执法", 3, ("foot_patrol", "enforcement"), 8),
    "event.construction.road_occupation": ("住建", 2, ("enforcement", "vehicle"), 4),
    "event.construction.site_dust": ("住建", 2, ("enforcement", "vehicle"), 2),
    "event.street_order.vending": ("城管执法", 2, ("foot_patrol", "enforcement"), 1),
    "event.street_order.unlicensed_business": ("市场监管", 3, ("enforcement",), 24),
    "event.emergency.road_collapse": ("市政", 1, ("vehicle",), 1),
    "event.emergency.waterlogging": ("水务", 1, ("vehicle",), 2),
    "part.public_facility.manhole": ("市政", 1, ("vehicle", "foot_patrol"), 2),
    "part.public_facility.street_light": ("市政", 3, ("vehicle",), 24),
    "part.city_appearance.waste_bin": ("环卫", 3, ("sanitation",), 4),
}

# Workflow limits for the stages before and after the work itself (configuration).
REGISTER_LIMIT = 30 * MINUTE        # 受理/立案
DISPATCH_LIMIT = {1: 15 * MINUTE, 2: 30 * MINUTE, 3: 60 * MINUTE}   # 派遣, by priority
VERIFY_LIMIT = 2 * HOUR             # 核查
CLOSE_LIMIT = HOUR                  # 结案
