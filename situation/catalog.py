"""What codes mean in words: case categories, stages, unit kinds and statuses, in zh and en.

Time limits per category are configuration (local practice differs), kept here beside the
names; see the category table in PROTOCOL.md.
"""
from __future__ import annotations

# category code → (zh 大类/小类, en, hours to resolve)
CATEGORIES: dict[str, tuple[str, str, float]] = {
    "event.city_appearance.exposed_garbage": ("暴露垃圾", "Exposed garbage", 4),
    "event.city_appearance.illegal_building": ("私搭乱建", "Illegal building", 4),
    "event.advertising.illegal_flyers": ("非法小广告", "Illegal flyers", 8),
    "event.construction.road_occupation": ("施工占道", "Road occupation", 4),
    "event.construction.site_dust": ("工地扬尘", "Site dust", 2),
    "event.street_order.vending": ("占道经营", "Street vending", 1),
    "event.street_order.unlicensed_business": ("无照经营", "Unlicensed business", 24),
    "event.emergency.road_collapse": ("路面塌陷", "Road collapse", 1),
    "event.emergency.waterlogging": ("道路积水", "Waterlogging", 2),
    "part.public_facility.manhole": ("井盖", "Manhole cover", 2),
    "part.public_facility.street_light": ("路灯", "Street light", 24),
    "part.city_appearance.waste_bin": ("果皮箱", "Waste bin", 4),
}

CASE_STAGES: dict[str, tuple[str, str]] = {
    "reported": ("上报", "Reported"),
    "registered": ("立案", "Registered"),
    "dispatched": ("派遣", "Dispatched"),
    "on_scene": ("处置", "On scene"),
    "resolved": ("处置反馈", "Resolved"),
    "verified": ("核查", "Verified"),
    "closed": ("结案", "Closed"),
    "rejected": ("不予立案", "Rejected"),
}

UNIT_KINDS: dict[str, tuple[str, str]] = {
    "foot_patrol": ("步巡", "Foot patrol"),
    "vehicle": ("车巡", "Vehicle"),
    "enforcement": ("执法", "Enforcement"),
    "sanitation": ("环卫", "Sanitation"),
}

UNIT_STATUSES: dict[str, tuple[str, str]] = {
    "available": ("待命", "Available"),
    "dispatched": ("已派遣", "Dispatched"),
    "en_route": ("在途", "En route"),
    "on_scene": ("处置中", "On scene"),
    "returning": ("返回", "Returning"),
    "off_duty": ("下班", "Off duty"),
    "out_of_service": ("停用", "Out of service"),
}

SENSOR_KINDS: dict[str, tuple[str, str]] = {
    "air": ("空气", "Air"),
    "noise": ("噪声", "Noise"),
    "crowd": ("人流", "Crowd"),
    "vendor": ("游商", "Vending"),
    "parking": ("违停", "Parking"),
    "manhole": ("井盖", "Manhole"),
    "waste": ("垃圾桶", "Waste bin"),
}

METRIC_UNITS = {"pm25": "µg/m³", "pm10": "µg/m³", "laeq": "dB(A)", "density": "/100m²",
                "detections": "/min", "illegal": "", "tilt_deg": "°", "open": "", "fill_pct": "%"}

SOURCES: dict[str, tuple[str, str]] = {
    "patrol": ("巡查", "Patrol"), "citizen": ("市民", "Citizen"), "sensor": ("感知", "Sensor"),
    "hotline": ("热线", "Hotline"), "video": ("视频", "Video"),
}


def _pick(table: dict[str, tuple], code: str, lang: str) -> str:
    entry = table.get(code)
    if entry is None:
        return code            # unknown codes are shown as they came
    return entry[0] if lang == "zh" else entry[1]


def category_name(code: str, lang: str = "zh") -> str:
    return _pick(CATEGORIES, code, lang)


def stage_name(status: str, lang: str = "zh") -> str:
    return _pick(CASE_STAGES, status, lang)


def unit_kind_name(kind: str, lang: str = "zh") -> str:
    return _pick(UNIT_KINDS, kind, lang)


def unit_status_name(status: str, lang: str = "zh") -> str:
    return _pick(UNIT_STATUSES, status, lang)


def sensor_kind_name(kind: str, lang: str = "zh") -> str:
    return _pick(SENSOR_KINDS, kind, lang)


def resolve_limit_hours(category: str) -> float | None:
    entry = CATEGORIES.get(category)
    return entry[2] if entry else None


def district_name(adcode: str | None, lang: str = "zh", short: bool = True) -> str:
    """东城 / Dongcheng for 110101; an unknown or missing code shown as it came (or —)."""
    from feeds.districts import by_adcode
    if not adcode:
        return "—"
    d = by_adcode().get(adcode)
    if d is None:
        return adcode
    if lang == "zh":
        return d.short_zh if short else d.name_zh
    return d.name_en.removesuffix(" District") if short else d.name_en
