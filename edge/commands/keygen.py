"""`thermal-edge keygen DIR`: create CURVE key pairs for the feed (zmq.auth certificates).

Each pair is two text files (docs/messages.md, "Key files"): NAME.key holds the public key,
NAME.key_secret the public and the secret key (mode 0600), both as 40-character Z85 strings.
Every key's fingerprint (what the gateway logs when it refuses a key) is printed;
``--fingerprint FILE`` prints it for existing key files.
"""
from __future__ import annotations

from pathlib import Path

from edge.errors import UserError
from edge.feed.security import KeyFileError, create_keys, key_fingerprint, load_public


def register(sub) -> None:
    p = sub.add_parser("keygen", help="create CURVE key pairs (NAME.key public, NAME.key_secret private)",
                       description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?", help="folder for the key files (created)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="key pair name (repeatable; default: server and client). A second control room "
                        "authorized into the same allowlist needs another name, e.g. --name room2")
    p.add_argument("--authorize", metavar="DIR",
                   help="also copy the new public keys into this allowlist folder (e.g. DIR/authorized)")
    p.add_argument("--fingerprint", action="append", type=Path, metavar="FILE",
                   help="print the fingerprint of an existing .key or .key_secret file (repeatable) and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.fingerprint:
        for path in args.fingerprint:
            try:
                print(f"{path}: fingerprint {key_fingerprint(load_public(path))}")
            except KeyFileError as e:
                raise UserError(str(e)) from None
        return 0
    if args.dir is None:
        raise UserError("keygen: give the folder for the new keys (or --fingerprint FILE)")
    names = args.name or ["server", "client"]
    try:
        created = create_keys(args.dir, names, args.authorize)
    except (KeyFileError, OSError) as e:
        raise UserError(str(e)) from None
    for path in created:
        public = path.with_suffix(".key")
        print(f"created {public} (public, fingerprint {key_fingerprint(load_public(public))}) and {path} "
              "(secret: keep private)")
    if args.authorize:
        print(f"authorized: copied the public keys into {args.authorize}")
    return 0
