"""Task and batch ids: UUIDs whose first 48 bits are the time in milliseconds (RFC 9562 version 7).

Random version 4 ids land anywhere in the id index, so with a long history every insert touches a
page that may long have left the cache; time-ordered ids append at its end, however large it grows.
The remaining 74 bits are random, so ids stay unguessable and unique across API processes and hosts.
"""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits, of which 74 are kept
    value = (milliseconds & (2**48 - 1)) << 80 | random
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC's variant
    return str(uuid.UUID(int=value))
