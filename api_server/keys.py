"""`python -m api_server.keys create|list|revoke`: manage the API keys in the configured database.

`create` prints the new key once; only its hash is stored, so a lost key is revoked and replaced,
never recovered. The first key closes the service: from then on every request needs a key.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime

from api_server.tokens import hash_token, new_token
from shared.backends import open_store
from shared.config import get_settings
from shared.errors import QueueError
from shared.ids import new_id
from shared.models import ApiKey
from shared.store import Store

NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"


def _when(value: float | None) -> str:
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def create(store: Store, name: str, admin: bool, max_queued: int | None) -> int:
    token = new_token()
    key = ApiKey(new_id(), name, admin, max_queued, time.time())
    if not store.create_key(key, hash_token(token)):
        print(
            f"KeyExists: a key named {name!r} exists already (revoked keys keep their names); pick another",
            file=sys.stderr,
        )
        return 1
    kind = "admin key" if admin else "key"
    quota = f", max_queued={max_queued}" if max_queued is not None else ""
    print(f"created {kind} {name!r} (id {key.id}{quota}); it is shown only this once:", file=sys.stderr)
    print(token)
    return 0


def list_keys(store: Store) -> int:
    keys = store.list_keys()
    if not keys:
        print("no keys: the service is open to anyone who can reach it")
        return 0
    rows = [("NAME", "ID", "ADMIN", "MAX_QUEUED", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (
            k.name,
            k.id,
            "yes" if k.admin else "no",
            str(k.max_queued) if k.max_queued is not None else "-",
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def revoke(store: Store, name: str) -> int:
    if not store.revoke_key(name, time.time()):
        print(
            f"KeyNotFound: no unrevoked key is named {name!r} (see `python -m api_server.keys list`)", file=sys.stderr
        )
        return 1
    print(f"revoked key {name!r}: every API process refuses it from its next request")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _name(text: str) -> str:
    if not re.fullmatch(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError("1 to 64 of the characters A-Z a-z 0-9 _ . @ -")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_server.keys", description="Manage API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("create", help="create a key and print it once")
    made.add_argument("name", type=_name, help="who the key is for; owns the tasks submitted with it")
    made.add_argument("--admin", action="store_true", help="sees and cancels every key's tasks, reads /metrics")
    made.add_argument("--max-queued", type=_positive, default=None, help="most tasks submitted or pending at once")
    commands.add_parser("list", help="every key: name, id, created, last used (never the key itself)")
    gone = commands.add_parser("revoke", help="refuse a key from now on")
    gone.add_argument("name", type=_name)
    args = parser.parse_args(argv)
    store = open_store(get_settings(), pool_size=1)
    try:
        store.initialize()
        if args.command == "create":
            return create(store, args.name, args.admin, args.max_queued)
        if args.command == "list":
            return list_keys(store)
        return revoke(store, args.name)
    except QueueError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())
