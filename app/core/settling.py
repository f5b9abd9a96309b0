"""When a version directory may be read: its files no longer change.

Publishing should be atomic (write elsewhere, rename into place), but a version copied in
place must not be read half-written nor be refused for good. So a candidate is remembered by
a fingerprint of its whole tree (every file's size, mtime and ctime, not only the top
directory, which finishing a file inside ``variables/`` does not change): a refused version
is retried as soon as anything under it changes. And while versions are serving, a candidate
is only loaded once nothing under it has changed for ``settle_seconds`` (by ctime, which the
kernel sets, so copies that preserve old mtimes are seen too). With nothing serving yet (start
up) a candidate is tried at once: serving sooner matters more, and a half-written one is
refused and retried when its files change.

Its own module because it is about the file system only: the registry (``app.core.registry``)
decides what to do with a candidate, this module when its files can be trusted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple


class TreeState(NamedTuple):
    """What a version directory looks like now: its fingerprint and its newest change."""

    fingerprint: int
    newest_change_ns: int


def tree_state(path: Path) -> TreeState:
    """Fingerprint every entry under ``path`` (name, size, mtime, ctime) and the top inode.

    Raises OSError if the directory disappears while it is read.
    """
    top = path.stat()
    entries: list[tuple[str, int, int, int]] = []
    newest = top.st_ctime_ns
    for entry in sorted(path.rglob("*")):
        stat = entry.lstat()
        entries.append((str(entry), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
        newest = max(newest, stat.st_ctime_ns)
    return TreeState(hash((top.st_ino, top.st_ctime_ns, tuple(entries))), newest)


def settled(path: Path, state: TreeState, settle_seconds: float) -> TreeState | None:
    """The tree's state once nothing under ``path`` has changed for ``settle_seconds`` since
    ``state`` was taken; None if it is still changing after waiting out the rest of that time.

    Blocking (it sleeps): run it on the watcher's thread. Raises OSError if the directory
    disappears meanwhile.
    """
    if settle_seconds <= 0:
        return state
    quiet_for = (time.time_ns() - state.newest_change_ns) / 1e9
    if quiet_for >= settle_seconds:
        return state
    time.sleep(settle_seconds - quiet_for)
    now = tree_state(path)
    return now if now.fingerprint == state.fingerprint else None
