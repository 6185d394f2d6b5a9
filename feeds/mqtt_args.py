"""The command-line flags of an MQTT source, shared by the wall (``main.py``) and the bridge
(``python -m feeds.mqtt_bridge``), and their site-config form (``[[wall.mqtt]]``).

    --mqtt mqtts://broker.city:8883 --mqtt-user wall --mqtt-password-file wall.pass \\
        --mqtt-ca ca.pem --mqtt-sub "senml sensors/+/senml kind_level=2 crs=wgs84"

Every ``--mqtt-*`` flag belongs to the ``--mqtt`` right before it (like ``--state`` to its
``--feed``). ``--mqtt-sub`` is repeatable: ``FORMAT FILTER [crs=…] [kind_level=N] [src=NAME]
[srcs=A,B,…]`` (formats and keys as in ``feeds.mqtt_config``; ``srcs``, protocol only: the only
srcs its records may claim, required when the wall runs with ``--publishers``); with none,
the defaults (``citywall/#``, ``senml/#``, ``owntracks/+/+``). A password is read from a file, never given on a command
line (where ``ps`` shows it). Bad settings raise ``ValueError`` (the caller exits 2).
"""
from __future__ import annotations

from pathlib import Path

from feeds.key_args import ORDER, Ordered
from feeds.mqtt_config import MqttSettings, _safe

PARTS = {"mqtt_user": "username", "mqtt_password_file": "password", "mqtt_ca": "ca",
         "mqtt_cert": "cert", "mqtt_key": "key", "mqtt_sub": "subscriptions"}
MAX_PASSWORD_FILE = 4096
SUB_KEYS = ("crs", "kind_level", "src", "srcs")


def add_mqtt_args(group, *, required: bool = False) -> None:
    group.add_argument("--mqtt", action=Ordered, metavar="URL", required=required,
                       help="an MQTT broker (mqtt://host[:1883] or mqtts://host[:8883]); "
                            "repeatable; the --mqtt-* flags after it are its own")
    group.add_argument("--mqtt-user", action=Ordered, metavar="NAME",
                       help="the --mqtt before it: log in as NAME")
    group.add_argument("--mqtt-password-file", action=Ordered, metavar="FILE",
                       help="the --mqtt before it: the password, the file's first line")
    group.add_argument("--mqtt-ca", action=Ordered, metavar="FILE",
                       help="the mqtts:// before it: the CA to trust (default: the system's)")
    group.add_argument("--mqtt-cert", action=Ordered, metavar="FILE",
                       help="the mqtts:// before it: a client certificate (with --mqtt-key)")
    group.add_argument("--mqtt-key", action=Ordered, metavar="FILE",
                       help="the mqtts:// before it: the client certificate's key")
    group.add_argument("--mqtt-sub", action=Ordered, metavar="'FORMAT FILTER [k=v…]'",
                       help="the --mqtt before it: subscribe to FILTER, read as FORMAT "
                            "(protocol, senml or owntracks); keys crs=wgs84|gcj02, "
                            "kind_level=N (senml), src=NAME, srcs=A,B (protocol: the srcs "
                            "allowed); repeatable; default: citywall/#, "
                            "senml/#, owntracks/+/+")


def mqtt_settings(args) -> list[MqttSettings]:
    """Every ``--mqtt`` with its own flags, as settings (in command-line order)."""
    given: list[dict] = []
    for dest, value in list(getattr(args, ORDER, None) or []):
        if dest == "mqtt":
            given.append({"url": value})
        elif dest in PARTS:
            flag = "--" + dest.replace("_", "-")
            if not given:
                raise ValueError(f"{flag} {value}: put it right after its --mqtt")
            one = given[-1]
            key = PARTS[dest]
            if key == "subscriptions":
                one.setdefault(key, []).append(parse_sub(value))
            elif key in one:
                raise ValueError(f"{flag}: {_safe(one['url'])!r} is given it twice")
            elif key == "password":
                one[key] = read_password(value)
            else:
                one[key] = value
    return [MqttSettings.from_url(one.pop("url"), **one) for one in given]


def parse_sub(spec: str) -> dict:
    """``FORMAT FILTER [crs=…] [kind_level=N] [src=NAME] [srcs=A,B,…]`` → a subscription
    table."""
    words = str(spec).split()
    if len(words) < 2:
        raise ValueError(f"--mqtt-sub {spec!r}: give FORMAT FILTER (e.g. 'senml senml/#')")
    out: dict = {"format": words[0], "topic": words[1]}
    for word in words[2:]:
        key, eq, value = word.partition("=")
        if not eq or key not in SUB_KEYS:
            raise ValueError(f"--mqtt-sub {spec!r}: {word!r} is not one of "
                             f"{', '.join(k + '=' for k in SUB_KEYS)}")
        if key == "srcs":
            out[key] = [one for one in value.split(",") if one] if value else []
        elif key == "kind_level":
            if not (value.isascii() and value.isdigit()):
                raise ValueError(f"--mqtt-sub {spec!r}: kind_level is a whole number")
            out[key] = int(value)
        else:
            out[key] = value
    return out


def read_password(path: str) -> str:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_PASSWORD_FILE + 1)
    except OSError as exc:
        raise ValueError(f"--mqtt-password-file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PASSWORD_FILE:
        raise ValueError(f"--mqtt-password-file {path}: longer than {MAX_PASSWORD_FILE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--mqtt-password-file {path}: not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ValueError(f"--mqtt-password-file {path}: empty")
    return lines[0]
