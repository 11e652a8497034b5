"""Leftovers of killed processes: temporary files and folders named after their PID.

Every temporary a run or an export writes beside its target carries the writer's
process id (`.best.tmp<PID>.keras`, `.tmp-<version>-<PID>/`, `zoo-verify-<PID>-*`), so
the next run or export that finds one whose process is gone (killed mid-write, even
by SIGKILL) removes it; one whose process still runs is left alone.

    remove_stale(run_dir, r"\\.best\\.tmp(\\d+)\\.keras")
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """True if a process with this id runs (on this machine)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(folder, pattern: str) -> list[pathlib.Path]:
    """Removes the entries of `folder` whose whole name matches `pattern` and whose PID
    (the pattern's first group) no longer runs; returns what was removed."""
    folder = pathlib.Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:  # no such folder (yet), or unreadable: nothing of ours to clean
        return removed
    regex = re.compile(pattern)
    for entry in entries:
        match = regex.fullmatch(entry.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        log.info("Removed %s, left by process %s, which is gone", entry, match.group(1))
        removed.append(entry)
    return removed
