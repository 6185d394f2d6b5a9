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

Bounds: an order is one flat object, so it is decoded with ``feeds.bounds.loads`` at depth 2
(deeper nesting is ``too_deep`` before anything walks it) and never raises; a frame that is not
UTF-8 or not JSON has its ``order_id`` peeked from its first 4 KiB (a plain valid id only), so
the service can still answer it; every id must be
``valid_id``, the note ``valid_text``, and ``ts`` a time between 2000 and 9999. A frame larger
than ``MAX_ORDER_BYTES`` is not read. A reply is decoded straight into its type (a snapshot is
big) and, when that fails, judged under the same bounds to say why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta

from feeds.bounds import MAX_DEPTH, loads, time_problem, valid_id, valid_text
from feeds.decode import _classify          # the feed's words for a validation failure
from feeds.schema import PROTOCOL_VERSION, Case, Unit

MAX_ORDER_BYTES = 64 * 1024                 # a request larger than this is not read
# A reply may be a snapshot of the whole city: a console's DEALER takes frames up to this
# (its MAXMSGSIZE), and the service refuses to send a larger one.
DEFAULT_MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
# An order is one flat object ({ and its scalars): one level of room above that, so a field
# holding a list or an object is "wrong_type", and anything deeper is "too_deep".
ORDER_DEPTH = 2
ID_FIELDS = ("order_id", "console", "case_id", "unit_id")

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
    # The role of the key that asked, and its districts (adcodes; None: every district) —
    # None when the service is not secured. Optional: older consoles ignore them.
    role: str | None = None
    districts: list[str] | None = None


Reply = Union[Ack, SnapshotReply]
REPLY_TYPES: dict[str, type] = {"ack": Ack, "snapshot": SnapshotReply}


# ---- reasons ----------------------------------------------------------------------------
# code → (English, 中文); ``{…}`` are filled in by ``reason()``. Codes are stable: a console
# translates by the code, and shows the text as it came when it does not know the code.
REASONS: dict[str, tuple[str, str]] = {
    # the request itself
    "not_json": ("the request is not JSON", "指令不是 JSON"),
    "not_object": ("the request is not a JSON object", "指令不是 JSON 对象"),
    "not_utf8": ("the request is not UTF-8", "指令不是 UTF-8 编码"),
    "too_large": ("the request is larger than the limit ({detail})", "指令超过大小上限（{detail}）"),
    "too_deep": ("the request nests deeper than an order can", "指令嵌套层数超出允许范围"),
    "bad_text": ("{detail}: a lone surrogate or a control character",
                 "{detail} 含不允许的字符（孤立代理项或控制字符）"),
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
    "internal": ("the service could not judge it (an internal error, logged)",
                 "调度服务内部错误，无法判断（已记录）"),
    # what the service answers an order it cannot take: the sub-code and its words
    "bad_order": ("{sub}: {detail}", "指令无法受理（{sub}），未执行"),
    "rate_limited": ("too many {what} requests from this console (at most {limit}); "
                     "retry in {retry_s} s",
                     "{what} 请求过于频繁（上限 {limit}），请 {retry_s} 秒后重试"),
    "snapshot_too_large": ("the snapshot is {size} bytes, larger than the limit of {limit}",
                           "快照 {size} 字节，超过上限 {limit}"),
    # who sent it (the authenticated key, feeds.roles): the words are NOT_ALLOWED's
    "not_allowed": ("{what}", "{what_zh}"),
}

# What a key's role lacks (``not_allowed(kind, …)``); roles and actions in words below.
NOT_ALLOWED: dict[str, tuple[str, str]] = {
    "role": ("{role} {name} may not {action}", "{role_zh} {name} 无{action_zh}权限"),
    "trainer": ("trainer {name} may only order a training desk, not the live service "
                "(not even {action})",
                "培训员 {name} 只能对培训席下达指令，无权操作实时调度服务（{action_zh}）"),
    "district": ("{role} {name} may not {action} {what} {id}: it is in district {district}, "
                 "not one of {districts}",
                 "{role_zh} {name} 无权{action_zh}{what_zh} {id}：所在区 {district} 不在其辖区 "
                 "{districts} 内"),
    "unlisted": ("key {name} has no role in the roles file", "密钥 {name} 未在角色文件中授权"),
    "untrusted": ("key {name} is no longer trusted", "密钥 {name} 已不再受信任"),
    "unauthenticated": ("the order came without an authenticated key", "指令未经密钥认证"),
}
ROLE_WORDS = {"viewer": "观察员", "dispatcher": "调度员", "commander": "指挥长",
              "trainer": "培训员"}
ACTION_WORDS = {"dispatch": "派遣", "recall": "召回", "snapshot": "获取快照"}
WHAT_WORDS = {"case": "案件", "unit": "执法单元"}


def reason(code: str, **fields) -> str:
    """``"code: English / 中文"`` with the fields filled in (unknown codes get the code)."""
    en, zh = REASONS.get(code, (code, code))
    fields = {k: ("-" if v is None else v) for k, v in fields.items()}
    try:
        return f"{code}: {en.format(**fields)} / {zh.format(**fields)}"
    except (KeyError, IndexError):
        return f"{code}: {en} / {zh}"


def not_allowed(kind: str, **fields) -> str:
    """The reason for an order the sender's key may not give: ``"not_allowed: viewer
    东城-值守 may not dispatch / 观察员 东城-值守 无派遣权限"``."""
    en, zh = NOT_ALLOWED.get(kind, NOT_ALLOWED["unlisted"])
    fields = {k: ("-" if v is None else v) for k, v in fields.items()}
    fields.update(role_zh=ROLE_WORDS.get(fields.get("role"), fields.get("role", "-")),
                  action_zh=ACTION_WORDS.get(fields.get("action"), fields.get("action", "-")),
                  what_zh=WHAT_WORDS.get(fields.get("what"), fields.get("what", "-")))
    try:
        what, what_zh = en.format(**fields), zh.format(**fields)
    except (KeyError, IndexError):
        what, what_zh = kind, kind
    return reason("not_allowed", what=what, what_zh=what_zh)


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

    @property
    def words(self) -> str:
        """The English words for it, one line (``detail`` when there is one)."""
        en = REASONS.get(self.code, (self.code,))[0]
        try:
            return en.format(detail=self.detail or "-")
        except (KeyError, IndexError):
            return self.detail or self.code


def bad_order(code: str, detail: str = "") -> str:
    """The reason the service answers an order it cannot take:
    ``"bad_order: wrong_type: Expected `int`, got `str` - at `$.ts` / 指令无法受理（wrong_type），
    未执行"``."""
    return reason("bad_order", sub=code, detail=Problem(code, detail).words)


# ---- decoding ---------------------------------------------------------------------------
def decode_order(data: bytes, max_bytes: int = MAX_ORDER_BYTES) -> Order | Problem:
    """One request frame → a typed order, or the ``Problem`` with it. Never raises."""
    if len(data) > max_bytes:
        return Problem("too_large", f"{len(data)} bytes, at most {max_bytes}")
    obj, why = loads(data, ORDER_DEPTH, lenient=True)
    if why is not None:
        return Problem(why, order_id=_id_of_deep(data) if why == "too_deep"
                       else _peek_order_id(data))
    if not isinstance(obj, dict):
        return Problem("not_object")
    oid = _readable_id(obj.get("order_id"))
    order = _convert(obj, ORDER_TYPES, oid)
    if isinstance(order, Problem):
        return order
    return _judge_values(order, oid)


def _readable_id(value) -> str | None:
    """The ``order_id`` a reply can carry, or None."""
    return value if isinstance(value, str) and valid_id(value) else None


PEEK_BYTES = 4096                           # how far into an undecodable order an id is sought


def _peek_order_id(data: bytes) -> str | None:
    """Best effort, bounded: the ``order_id`` of a request that is not UTF-8 or not JSON, so
    it is answered rather than dropped. Only the first ``"order_id"`` key in the first
    ``PEEK_BYTES``, followed by ``:`` and a plain string (no escapes) that is a valid id,
    counts (as ``feeds.decode._peek_src`` finds a ``src``); anything else is None."""
    head = bytes(data[:PEEK_BYTES])
    idx = head.find(b'"order_id"')
    if idx < 0:
        return None
    rest = head[idx + len(b'"order_id"'):].lstrip()
    if not rest.startswith(b":"):
        return None
    rest = rest[1:].lstrip()
    if not rest.startswith(b'"'):
        return None
    end = rest.find(b'"', 1)
    if end < 0:
        return None
    raw = rest[1:end]
    if b"\\" in raw:
        return None
    try:
        oid = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _readable_id(oid)


def _id_of_deep(data: bytes) -> str | None:
    """The ``order_id`` of an order refused as too deep, when the decoder can still read it
    (nesting within the interpreter's recursion limit): it is answered, not dropped."""
    obj, why = loads(data, 1 << 30, lenient=True)
    return _readable_id(obj.get("order_id")) if why is None and isinstance(obj, dict) else None


def _judge_values(order: Order, oid: str | None) -> Order | Problem:
    """Text and time: what the types alone do not say."""
    for name in ID_FIELDS:
        value = getattr(order, name, None)
        if value is not None and not valid_id(value):
            return Problem("bad_text", name, oid)
    note = getattr(order, "note", None)
    if note is not None and not valid_text(note):
        return Problem("bad_text", "note", oid)
    if time_problem(order.ts, None):
        return Problem("out_of_range", f"ts {order.ts} is not a time between 2000 and 9999",
                       oid)
    return order


_reply_decoder = msgspec.json.Decoder(Union[Ack, SnapshotReply])


def decode_reply(data: bytes) -> Reply | Problem:
    """One reply frame → ``Ack`` or ``SnapshotReply``, or the ``Problem`` with it (no size
    limit here: the socket's MAXMSGSIZE is the limit). Never raises."""
    try:
        reply = _reply_decoder.decode(data)
        if reply.v == PROTOCOL_VERSION:
            return reply
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError, MemoryError):
        pass
    obj, why = loads(data, MAX_DEPTH)       # only to say why
    if why is not None:
        return Problem(why)
    if not isinstance(obj, dict):
        return Problem("not_object")
    return _convert(obj, REPLY_TYPES, _readable_id(obj.get("order_id")))


def _convert(obj: dict, types: dict[str, type], oid: str | None):
    if "v" not in obj:
        return Problem("missing_field", "Object missing required field `v`", oid)
    if obj["v"] != PROTOCOL_VERSION:
        return Problem("unknown_version", ascii(obj["v"])[:20], oid)
    kind = obj.get("type")
    if kind is None:
        return Problem("missing_field", "Object missing required field `type`", oid)
    rtype = types.get(kind) if isinstance(kind, str) else None
    if rtype is None:
        return Problem("unknown_type", ascii(kind)[:40], oid)
    try:
        return msgspec.convert(obj, rtype)
    except (msgspec.ValidationError, RecursionError, ValueError, TypeError) as exc:
        text = str(exc)
        return Problem(_classify(text), (text if valid_text(text) else ascii(text))[:200], oid)


_encoder = msgspec.json.Encoder()


def encode(message: Order | Reply) -> bytes:
    return _encoder.encode(message)
