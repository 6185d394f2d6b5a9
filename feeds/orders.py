"""Orders (指挥) of ../shared/PROTOCOL.md: what a console's DEALER sends the dispatch service's
ROUTER, and what comes back. One frame of JSON each way.

Requests: ``dispatch`` (case_id, unit_id, optional note), ``recall`` (unit_id), ``snapshot``;
each carries ``v``, ``type``, ``order_id``, ``console``, ``ts``. Replies: ``ack`` (result
``accepted`` or ``rejected`` and a reason) and ``snapshot`` (open cases, units and the ``seq``
of the service's own feed they include).

A reason is one line a person can read, with a code in front so a console can translate it:
``"unit_assigned: 东城-巡01 is already working case C1 (dispatched) / 东城-巡01 已派往案件 C1
（dispatched）"`` (one line on the wire).
``reason_code(reason)`` gives the code back. Pure functions over bytes: the service, the
client and the tests judge an order the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta

from feeds.decode import _classify          # the feed's words for a validation failure
from feeds.schema import PROTOCOL_VERSION, Case, Unit

MAX_ORDER_BYTES = 64 * 1024                 # a request larger than this is not read

Id = Annotated[str, Meta(min_length=1, max_length=128)]
Note = Annotated[str, Meta(max_length=2000)]


# ---- requests ---------------------------------------------------------------------------
class Order(msgspec.Struct, kw_only=True, tag_field="type"):
    """Fields every request carries (``type`` is the tag of each kind below)."""
    v: int
    order_id: Id
    console: Id
    ts: int


class DispatchOrder(Order, kw_only=True, tag="dispatch"):
    case_id: Id
    unit_id: Id
    note: Note | None = None


class RecallOrder(Order, kw_only=True, tag="recall"):
    unit_id: Id


class SnapshotOrder(Order, kw_only=True, tag="snapshot"):
    pass


ORDER_TYPES: dict[str, type[Order]] = {"dispatch": DispatchOrder, "recall": RecallOrder,
                                       "snapshot": SnapshotOrder}
CHANGING_TYPES = frozenset({"dispatch", "recall"})     # orders that change the picture


# ---- replies ----------------------------------------------------------------------------
class Ack(msgspec.Struct, kw_only=True, tag_field="type", tag="ack"):
    v: int = PROTOCOL_VERSION
    order_id: Id
    result: Literal["accepted", "rejected"]
    reason: str | None
    ts: int

    @property
    def accepted(self) -> bool:
        return self.result == "accepted"


class SnapshotReply(msgspec.Struct, kw_only=True, tag_field="type", tag="snapshot"):
    v: int = PROTOCOL_VERSION
    order_id: Id
    src: str
    seq: int                    # the last record of ``src``'s feed these include
    cases: list[Case]           # every open case
    units: list[Unit]           # every unit


Reply = Union[Ack, SnapshotReply]
REPLY_TYPES: dict[str, type] = {"ack": Ack, "snapshot": SnapshotReply}


# ---- reasons ----------------------------------------------------------------------------
# code → (English, 中文); ``{…}`` are filled in by ``reason()``. Codes are stable: a console
# translates by the code, and shows the text as it came when it does not know the code.
REASONS: dict[str, tuple[str, str]] = {
    # the request itself
    "not_json": ("the request is not JSON", "指令不是 JSON"),
    "not_object": ("the request is not a JSON object", "指令不是 JSON 对象"),
    "too_large": ("the request is larger than 64 KiB", "指令超过 64 KiB"),
    "unknown_version": ("protocol version {detail} is not known", "协议版本 {detail} 不支持"),
    "unknown_type": ("order type {detail} is not known", "未知的指令类型 {detail}"),
    "missing_field": ("{detail}", "缺少必填字段"),
    "wrong_type": ("{detail}", "字段类型错误"),
    "out_of_range": ("{detail}", "字段取值超出范围"),
    "bad_value": ("{detail}", "字段取值不允许"),
    # the picture
    "unknown_case": ("case {case_id} is not known to the dispatch service",
                     "调度服务没有案件 {case_id}"),
    "unknown_unit": ("unit {unit_id} is not known to the dispatch service",
                     "调度服务没有执法单元 {unit_id}"),
    "case_not_open": ("case {case_id} is {status} and no longer open",
                      "案件 {case_id} 状态为 {status}，已不在办理中"),
    "case_past_dispatch": ("case {case_id} is {status}: past the dispatch stage",
                           "案件 {case_id} 状态为 {status}，已过派遣环节"),
    "case_assigned": ("case {case_id} is already {status} with {unit}",
                      "案件 {case_id} 已由 {unit} 处置（{status}）"),
    "unit_assigned": ("{callsign} is already working case {case_id} ({status})",
                      "{callsign} 已派往案件 {case_id}（{status}）"),
    "unit_not_available": ("{callsign} is {status}, not available",
                           "{callsign} 当前状态为 {status}，不可派遣"),
    "unit_not_assigned": ("{callsign} is {status} with no case to recall it from",
                          "{callsign} 当前状态为 {status}，没有可召回的任务"),
    # the service
    "storage_unavailable": ("the order log cannot be written ({detail}); nothing was done",
                            "派遣记录无法写入（{detail}），指令未执行"),
}


def reason(code: str, **fields) -> str:
    """``"code: English / 中文"`` with the fields filled in (unknown codes get the code)."""
    en, zh = REASONS.get(code, (code, code))
    fields = {k: ("-" if v is None else v) for k, v in fields.items()}
    try:
        return f"{code}: {en.format(**fields)} / {zh.format(**fields)}"
    except (KeyError, IndexError):
        return f"{code}: {en} / {zh}"


def reason_code(text: str | None) -> str | None:
    """The code in front of a reason (``None`` for none)."""
    if not text:
        return None
    return text.split(":", 1)[0].strip()


@dataclass(frozen=True, slots=True)
class Problem:
    """A request or reply that could not be taken. ``order_id`` when one could be read (the
    service then answers with a rejection; without one it can only count a drop)."""
    code: str
    detail: str = ""
    order_id: str | None = None

    @property
    def reason(self) -> str:
        return reason(self.code, detail=self.detail)


# ---- decoding ---------------------------------------------------------------------------
def decode_order(data: bytes) -> Order | Problem:
    """One request frame → a typed order, or the ``Problem`` with it."""
    if len(data) > MAX_ORDER_BYTES:
        return Problem("too_large", f"{len(data)} bytes")
    obj = _object(data)
    if isinstance(obj, Problem):
        return obj
    oid = obj.get("order_id")
    oid = oid if isinstance(oid, str) and 0 < len(oid) <= 128 else None
    return _convert(obj, ORDER_TYPES, oid)


def decode_reply(data: bytes) -> Reply | Problem:
    """One reply frame → ``Ack`` or ``SnapshotReply``, or the ``Problem`` with it (no size
    limit: a snapshot of the whole city is large)."""
    obj = _object(data)
    if isinstance(obj, Problem):
        return obj
    oid = obj.get("order_id")
    return _convert(obj, REPLY_TYPES, oid if isinstance(oid, str) else None)


def _object(data: bytes) -> dict | Problem:
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return Problem("not_json")
    if not isinstance(obj, dict):
        return Problem("not_object")
    return obj


def _convert(obj: dict, types: dict[str, type], oid: str | None):
    if "v" not in obj:
        return Problem("missing_field", "Object missing required field `v`", oid)
    if obj["v"] != PROTOCOL_VERSION:
        return Problem("unknown_version", repr(obj["v"])[:20], oid)
    kind = obj.get("type")
    if kind is None:
        return Problem("missing_field", "Object missing required field `type`", oid)
    rtype = types.get(kind) if isinstance(kind, str) else None
    if rtype is None:
        return Problem("unknown_type", repr(kind)[:40], oid)
    try:
        return msgspec.convert(obj, rtype)
    except msgspec.ValidationError as exc:
        return Problem(_classify(str(exc)), str(exc)[:200], oid)


_encoder = msgspec.json.Encoder()


def encode(message: Order | Reply) -> bytes:
    return _encoder.encode(message)
