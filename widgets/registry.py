"""Every wall panel by name: what a layout may place on a screen."""
from __future__ import annotations

from widgets.case_queue import CaseQueue
from widgets.city_map import CityMap
from widgets.district_board import DistrictBoard
from widgets.feed_health import FeedHealth
from widgets.heat_panels import SpatialHeatPanel, TemporalHeatPanel
from widgets.order_audit import OrderAudit
from widgets.peak_duty import PeakDuty
from widgets.supervision import DistrictSupervision, SupervisionKpis
from widgets.supervision_coverage import PatrolCoverage
from widgets.sensor_tiles import SensorTiles
from widgets.training_log import TrainingLog
from widgets.unit_roster import UnitRoster

PANELS = {cls.name: cls for cls in (CaseQueue, UnitRoster, SensorTiles, FeedHealth,
                                    DistrictBoard, CityMap, SpatialHeatPanel,
                                    TemporalHeatPanel, OrderAudit, SupervisionKpis,
                                    DistrictSupervision, PatrolCoverage, PeakDuty, TrainingLog)}
