"""An MQTT source's settings: the broker, how to log in, and what to subscribe to. No Qt.

From a command line (``--mqtt URL``)::

    MqttSettings.from_url("mqtts://wall:secret@broker.city:8883", ca="ca.pem")

or from a TOML table (``from_table``; the same keys as the keyword arguments). The wall's and
the bridge's flags and ``[[wall.mqtt]]`` tables are ``feeds.mqtt_args``, which builds these
with ``from_url``::

    [[some.mqtt]]
    url = "mqtts://broker.city:8883"     # mqtt://[user[:pass]@]host[:1883] | mqtts://host[:8883]
    username = "wall"                    # optional; overrides the URL's user
    password = "secret"                  # optional; so that no password sits in a URL
    ca = "certs/ca.pem"                  # mqtts only, optional: the CA to trust (else the system's)
    cert = "certs/wall.pem"              # mqtts only, optional: a client certificate …
    key = "certs/wall.key"               # … and its key (both or neither)
    subscriptions = [                    # optional; the defaults below when left out
      { topic = "senml/#", format = "senml", kind_level = 2, crs = "wgs84", src = "mqtt:senml" },
      { topic = "citywall/#", format = "protocol", srcs = ["gw-1", "gw-2"] },
    ]

A subscription: ``topic`` (an MQTT filter, ``+`` and ``#`` as MQTT has them), ``format``
(``protocol``: protocol v1 records, the topic levels after the filter's fixed prefix joined with
``.`` giving the protocol topic, so ``citywall/sensor.air`` and ``citywall/sensor/air`` are both
``sensor.air``; a topic with no level after the prefix is ``unmapped_topic``); ``senml``: RFC
8428 JSON packs, ``feeds.senml``; ``owntracks``: OwnTracks location messages on
``…/USER/DEVICE``, ``feeds.owntracks``), ``kind_level`` (senml only: the 1-based topic level
naming the sensor kind, default 2 as in ``senml/KIND/…``), ``crs`` (``wgs84`` or ``gcj02``: the
frame the positions come in), ``src`` (the name records and refusals are counted under;
protocol records keep their own ``src``) and ``srcs`` (protocol only: the list of srcs its
records may claim, ``srcs = ["gw-1", "gw-2"]``, on a command line ``srcs=gw-1,gw-2``).

Which ``src`` a protocol record may claim: never one the source stamps itself (any ``senml`` or
``owntracks`` subscription's ``src``: such a record is refused ``src_not_allowed``, else two
records could share one ``(src, seq)``); when its subscription names ``srcs``, only one of them
(else ``src_not_allowed``, as ``feeds.receiver`` refuses a ZeroMQ publisher's record past
``--publishers``). Any MQTT client the broker lets publish can otherwise claim any src — a
dispatch service's too. So when the wall restricts srcs (``--publishers``), it builds its
sources with ``MqttSource(…, require_srcs=True)``, and a protocol subscription without ``srcs``
is a settings error (``ValueError``: "with --publishers, an MQTT protocol subscription must
name its srcs=…").

Defaults with no subscriptions given: ``citywall/#`` protocol (gcj02, the protocol's frame),
``senml/#`` senml, kind from level 2 (wgs84, as SenML's registry has it), ``owntracks/+/+``
owntracks (wgs84). Two filters that could match one topic are refused (a broker may deliver such
a message once per filter). Every bad setting raises ``ValueError`` with a one-line message
(never the password). ``MqttSettings.name`` is the URL without any password: the source's name
on the wall, in health and in logs."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from feeds.bounds import valid_id
from feeds.crs import GCJ02, WGS84, check_frame

FORMATS = ("protocol", "senml", "owntracks")
DEFAULT_CRS = {"protocol": GCJ02, "senml": WGS84, "owntracks": WGS84}
DEFAULT_SRC = {"protocol": "mqtt:protocol", "senml": "mqtt:senml", "owntracks": "mqtt:owntracks"}
PORTS = {"mqtt": 1883, "mqtts": 8883}
MAX_SUBSCRIPTIONS = 32
MAX_FILTER_CHARS = 256
MAX_LEVEL = 32
TABLE_KEYS = ("url", "username", "password", "ca", "cert", "key", "subscriptions")
SUB_KEYS = ("topic", "format", "kind_level", "crs", "src", "srcs")
MAX_SRCS = 256


@dataclass(frozen=True)
class Subscription:
    topic: str
    format: str
    crs: str
    src: str
    kind_level: int = 2
    srcs: tuple[str, ...] | None = None     # protocol: the only srcs its records may claim

    @property
    def prefix(self) -> tuple[str, ...]:
        """The filter's levels before its first wildcard: ``citywall/#`` → ("citywall",)."""
        out = []
        for level in self.topic.split("/"):
            if level in ("+", "#"):
                break
            out.append(level)
        return tuple(out)


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    subscriptions: tuple[Subscription, ...] = ()

    @property
    def name(self) -> str:
        """The URL without the password (what the wall, health and logs show)."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, *, username: str | None = None, password: str | None = None,
                 ca: str | None = None, cert: str | None = None, key: str | None = None,
                 subscriptions: list | None = None) -> "MqttSettings":
        if not isinstance(url, str) or not url.strip():
            raise ValueError("mqtt: give a URL, mqtt://host[:1883] or mqtts://host[:8883]")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise ValueError(f"mqtt: not a URL with a valid port: {_safe(url)!r}") from None
        scheme = parts.scheme.lower()
        if scheme not in PORTS:
            raise ValueError(f"mqtt: the URL must start mqtt:// or mqtts://, not {_safe(url)!r}")
        if not parts.hostname:
            raise ValueError(f"mqtt: no host in {_safe(url)!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"mqtt: the URL takes no path or query: {_safe(url)!r} (give "
                             "topics as subscriptions)")
        if port == 0:
            raise ValueError(f"mqtt: port 0 in {_safe(url)!r}")
        tls = scheme == "mqtts"
        user = username if username is not None else (
            unquote(parts.username) if parts.username else None)
        pw = password if password is not None else (
            unquote(parts.password) if parts.password is not None else None)
        for what, value in (("username", user), ("password", pw)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"mqtt: {what} must be text")
        if user is not None and not valid_id(user):
            raise ValueError("mqtt: the username must be 1-128 printable characters")
        if pw is not None and user is None:
            raise ValueError("mqtt: a password needs a username")
        if pw is not None and (len(pw) > 1024 or not pw.isprintable()):
            raise ValueError("mqtt: the password must be at most 1024 printable characters")
        for what, value in (("ca", ca), ("cert", cert), ("key", key)):
            if value is not None:
                if not tls:
                    raise ValueError(f"mqtt: {what} is for mqtts:// (TLS), the URL is mqtt://")
                if not isinstance(value, str) or not value:
                    raise ValueError(f"mqtt: {what} must be a file name")
        if (cert is None) != (key is None):
            raise ValueError("mqtt: a client cert and its key go together (give both or neither)")
        subs = default_subscriptions() if subscriptions is None else tuple(
            _subscription(s, i) for i, s in enumerate(_sub_list(subscriptions)))
        for i, a in enumerate(subs):
            for j in range(i):
                if filters_overlap(subs[j].topic, a.topic):
                    raise ValueError(f"mqtt: subscriptions {j + 1} ({subs[j].topic!r}) and "
                                     f"{i + 1} ({a.topic!r}) overlap: a broker may send a "
                                     "message twice; make the filters disjoint")
        return cls(host=parts.hostname, port=port or PORTS[scheme], tls=tls, username=user,
                   password=pw, ca=ca, cert=cert, key=key, subscriptions=subs)

    @classmethod
    def from_table(cls, table: dict) -> "MqttSettings":
        if not isinstance(table, dict):
            raise ValueError("mqtt: settings must be a table")
        for k in table:
            if k not in TABLE_KEYS:
                raise ValueError(f"mqtt: unknown key {k!r} (known: {', '.join(TABLE_KEYS)})")
        if "url" not in table:
            raise ValueError("mqtt: no url (mqtt://host[:1883] or mqtts://host[:8883])")
        return cls.from_url(table["url"], **{k: table[k] for k in TABLE_KEYS[1:] if k in table})


def default_subscriptions() -> tuple[Subscription, ...]:
    return (Subscription("citywall/#", "protocol", GCJ02, DEFAULT_SRC["protocol"]),
            Subscription("senml/#", "senml", WGS84, DEFAULT_SRC["senml"], kind_level=2),
            Subscription("owntracks/+/+", "owntracks", WGS84, DEFAULT_SRC["owntracks"]))


def _sub_list(subs) -> list:
    if not isinstance(subs, (list, tuple)) or not subs:
        raise ValueError("mqtt: subscriptions must be a non-empty list of tables")
    if len(subs) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"mqtt: at most {MAX_SUBSCRIPTIONS} subscriptions, not {len(subs)}")
    return list(subs)


def _subscription(s, i: int) -> Subscription:
    where = f"mqtt: subscription {i + 1}"
    if isinstance(s, Subscription):
        return s
    if not isinstance(s, dict):
        raise ValueError(f"{where}: must be a table {{topic = …, format = …}}")
    for k in s:
        if k not in SUB_KEYS:
            raise ValueError(f"{where}: unknown key {k!r} (known: {', '.join(SUB_KEYS)})")
    topic = s.get("topic")
    check_filter(topic, where)
    fmt = s.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"{where}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        crs = check_frame(s.get("crs", DEFAULT_CRS[fmt]))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    src = s.get("src", DEFAULT_SRC[fmt])
    if not isinstance(src, str) or not valid_id(src):
        raise ValueError(f"{where}: src must be 1-128 printable characters")
    level = s.get("kind_level", 2)
    if "kind_level" in s and fmt != "senml":
        raise ValueError(f"{where}: kind_level is for format senml")
    if type(level) is not int or not 1 <= level <= MAX_LEVEL:
        raise ValueError(f"{where}: kind_level must be a whole number 1-{MAX_LEVEL}")
    srcs = None
    if "srcs" in s:
        if fmt != "protocol":
            raise ValueError(f"{where}: srcs is for format protocol (the srcs its records may "
                             "claim)")
        given = s["srcs"]
        if (not isinstance(given, (list, tuple)) or not given or len(given) > MAX_SRCS
                or not all(isinstance(x, str) and valid_id(x) for x in given)):
            raise ValueError(f"{where}: srcs must be a list of 1-{MAX_SRCS} src ids (1-128 "
                             "printable characters each)")
        srcs = tuple(dict.fromkeys(given))
    sub = Subscription(topic, fmt, crs, src, kind_level=level, srcs=srcs)
    if fmt == "protocol" and not topic.endswith("#"):
        raise ValueError(f"{where}: a protocol subscription ends with # (PREFIX/#), so that "
                         "every protocol topic can come under it")
    if fmt == "senml" and level <= len(sub.prefix):
        raise ValueError(f"{where}: kind_level {level} is a fixed level of {topic!r}; it must "
                         "be a level the filter's wildcards match")
    return sub


def check_filter(topic, where: str = "mqtt") -> str:
    """An MQTT topic filter, or ValueError."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"{where}: topic must be a non-empty MQTT filter")
    if len(topic) > MAX_FILTER_CHARS or not topic.isprintable():
        raise ValueError(f"{where}: topic must be at most {MAX_FILTER_CHARS} printable "
                         "characters")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{where}: # must be a whole level and the last one: {topic!r}")
        if "+" in level and level != "+":
            raise ValueError(f"{where}: + must be a whole level: {topic!r}")
    if topic.startswith("$"):
        raise ValueError(f"{where}: $ topics are the broker's own: {topic!r}")
    return topic


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both filters."""
    la, lb = a.split("/"), b.split("/")
    for x, y in zip(la, lb):
        if x == "#" or y == "#":
            return True
        if x != y and "+" not in (x, y):
            return False
    if len(la) == len(lb):
        return True
    longer = la if len(la) > len(lb) else lb
    return longer[min(len(la), len(lb))] == "#"     # a/# matches a itself


def _safe(url: str) -> str:
    """The URL as said in a message: any password replaced by ***."""
    try:
        parts = urlsplit(str(url))
        if parts.password is not None:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
            return parts._replace(netloc=netloc).geturl()[:200]
    except ValueError:
        if "@" in str(url):
            return "***"
    return str(url)[:200]
