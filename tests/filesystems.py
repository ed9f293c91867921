"""A small real filesystem that a test can fill to the last byte (a real ENOSPC), for the
full-disk tests of both backends."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`, so that a test can fill it: a real ENOSPC, which SQLite
    reports as SQLITE_FULL (an RLIMIT_FSIZE would give EFBIG, which SQLite reports as an I/O error)
    and PostgreSQL as disk_full. Mounting needs root, or sudo without a password."""
    path.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    options = f"size={size},mode=0777"
    mounted = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root or sudo needed): {mounted.stderr.decode().strip()}"
    try:
        yield path
    finally:
        # Lazy: were a process still holding a file there (a failed test), it is detached anyway.
        subprocess.run([*sudo, "umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write a file that takes every free byte of the filesystem; removing it frees the space."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            with contextlib.suppress(OSError):
                while out.write(block):
                    pass
    with pytest.raises(OSError) as full:
        (directory / "one-more").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler
