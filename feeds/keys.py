"""CURVE keys: make, show and load them.

    python -m feeds.keys new NAME --dir DIR     DIR/NAME.key (public), DIR/NAME.key_secret (0600)
    python -m feeds.keys show FILE              the public key (Z85) and its fingerprint

The files are zmq.auth's certificate format (czmq's zcert), so keys made with
``zmq.auth.create_certificates`` or czmq work here too. A key's name is its file's stem: the
name a publishers file or a roles file gives it, and the name orders are recorded under.

Loading is strict: a missing, malformed or short key is one line (``KeyFileError``); a secret
key file that others can read is refused unless the caller says insecure. No secret key is ever
printed, logged or put in an error message.
"""
from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"


class KeyFileError(ValueError):
    """A key file that cannot be used; the message is one line a person can act on."""


@dataclass(frozen=True)
class Key:
    """A CURVE key: the public half (Z85, 40 bytes) and, for one's own key, the secret half."""
    name: str
    public: bytes
    secret: bytes | None = None
    path: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def __repr__(self) -> str:             # never the secret, whatever prints a Key
        return f"Key({self.name!r}, {self.fingerprint})"


def fingerprint(public_z85: bytes) -> str:
    """SHA-256 of the raw public key, the first 16 bytes as hex pairs: what people compare."""
    raw = z85.decode(public_z85)
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def name_of(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (SECRET_SUFFIX, PUBLIC_SUFFIX):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return Path(path).stem


def _valid_z85_key(value: bytes | None) -> bool:
    if value is None or len(value) != 40:
        return False
    try:
        return len(z85.decode(value)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def load_key(path: str | os.PathLike, *, secret: bool = False, insecure: bool = False) -> Key:
    """A key file → ``Key``. With ``secret``, the file must hold the secret half and be
    readable by its owner only (0600), unless ``insecure``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise KeyFileError(f"no such key file: {str(path)!r}")
    if secret:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and not insecure:
            raise KeyFileError(f"{path}: a secret key file others can read (mode "
                               f"{stat.S_IMODE(mode):o}); chmod 600 it, or pass --insecure")
    try:
        public, secret_half = zmq.auth.load_certificate(path)
    except (OSError, ValueError, IndexError) as exc:
        raise KeyFileError(f"{path}: not a CURVE key file ({type(exc).__name__})") from None
    if not _valid_z85_key(public):
        raise KeyFileError(f"{path}: the public key is not 40 characters of Z85")
    if secret:
        if secret_half is None:
            raise KeyFileError(f"{path}: holds no secret key (give the .key_secret file)")
        if not _valid_z85_key(secret_half):
            raise KeyFileError(f"{path}: the secret key is not 40 characters of Z85")
        if zmq.curve_public(secret_half) != public:
            raise KeyFileError(f"{path}: the public and secret keys do not belong together")
    return Key(name_of(path), public, secret_half if secret else None, str(path))


def new_key(name: str, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write DIR/NAME.key and DIR/NAME.key_secret (0600). Refuses to overwrite either."""
    if not name or name != Path(name).name or name.startswith(".") or not name.isprintable():
        raise KeyFileError(f"not a key name: {name!r} (letters, digits, - and _)")
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    public = directory / (name + PUBLIC_SUFFIX)
    secret = directory / (name + SECRET_SUFFIX)
    for path in (public, secret):
        if path.exists():
            raise KeyFileError(f"{path} exists: a key is never overwritten (remove it first)")
    old = os.umask(0o077)                 # the secret file is never readable by others
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return public, secret


def main(argv: list[str] | None = None) -> int:
    from feeds.args import EXIT_USAGE, OneLineParser
    p = OneLineParser(prog="feeds.keys", description="Make and show CityWall's CURVE keys.")
    sub = p.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a key pair")
    new.add_argument("name", help="the key's name: a wall, a publisher, a service")
    new.add_argument("--dir", required=True, help="where to write NAME.key and NAME.key_secret")
    show = sub.add_parser("show", help="print a key file's public key and fingerprint")
    show.add_argument("file")
    args = p.parse_args(argv)
    try:
        if args.command == "new":
            public, secret = new_key(args.name, args.dir)
            key = load_key(public)
            print(f"{public}\n{secret} (secret: keep it on this machine, mode 600)\n"
                  f"public key {key.public.decode()}  fingerprint {key.fingerprint}")
        else:
            key = load_key(args.file)
            print(f"{key.name}  public key {key.public.decode()}  fingerprint {key.fingerprint}")
    except KeyFileError as exc:
        print(f"feeds.keys: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
