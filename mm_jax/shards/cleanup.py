"""Leftovers in a shard directory, and what a full disk leaves behind (stage: shards).

The writer (:mod:`mm_jax.shards.writer`) writes every file under a temporary
name ``.NAME.tmp-PID`` and renames it when complete; a writer killed with
``kill -9`` leaves that file behind. :func:`remove_stale_tmp` deletes those
whose writer is gone: all of them when this process holds the directory's
lock (``DIR/.lock`` names our pid: :mod:`mm_jax.runlock`), else those whose
pid is not alive on this host. :func:`remove_other_shards` deletes a split's
shard files (and their ``.parts`` entries) that its new manifest entry does
not list, e.g. the 4 shards of a split re-tokenized into 2. :func:`disk_full`
recognises an out-of-space error from Python or from array_record (whose C++
writer raises ``RuntimeError("... No space left on device ...")``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pathlib
import re
import socket
from typing import Iterable

log = logging.getLogger(__name__)

_TMP = re.compile(r"^\..+\.tmp-(\d+)$")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
LOCK_NAME = ".lock"  # mm_jax.runlock.LOCK_NAME


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` reports a full disk or an exhausted quota."""
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    text = str(err)
    return isinstance(err, (OSError, RuntimeError)) and any(os.strerror(e) in text for e in _FULL_ERRNOS)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    except OSError:
        return True  # cannot tell: keep its file
    return True


def _we_hold_lock(directory: pathlib.Path) -> bool:
    """Whether ``DIR/.lock`` is held by this process (runlock writes the holder's pid and host)."""
    try:
        info = json.loads((directory / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname()


def remove_stale_tmp(directory: pathlib.Path) -> list[pathlib.Path]:
    """Deletes ``.NAME.tmp-PID`` files of writers that are gone, in ``directory`` and its ``.parts``.

    A file of this process is stale too (a writer only starts here). Returns
    the files removed (each is logged).
    """
    held = _we_hold_lock(directory)
    removed = []
    for folder in (directory, directory / ".parts"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            m = _TMP.match(path.name)
            if m is None or not path.is_file():
                continue
            pid = int(m.group(1))
            if held or pid == os.getpid() or not _pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
                    log.info("removed %s, left by writer pid %d (%s)", path, pid,
                             "we hold the directory's lock" if held else "no longer running")
            else:
                log.warning("%s belongs to running pid %d; left in place", path, pid)
    return removed


def remove_other_shards(directory: pathlib.Path, split: str, keep: Iterable[str]) -> list[str]:
    """Deletes ``split``'s shard files and ``.parts`` entries not named in ``keep``; the names removed."""
    keep = set(keep)
    pattern = re.compile(rf"^{re.escape(split)}-\d{{5}}-of-\d{{5}}\.array_record$")
    removed = []
    for path in sorted(directory.glob(f"{split}-*.array_record")):
        if pattern.match(path.name) and path.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                (directory / ".parts" / f"{path.name}.json").unlink()
            removed.append(path.name)
    for part in sorted((directory / ".parts").glob(f"{split}-*.array_record.json")):
        name = part.name[: -len(".json")]
        if pattern.match(name) and name not in keep:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    if removed:
        log.info("removed %d shard(s) of split %r that the new set replaces: %s", len(removed), split,
                 ", ".join(removed))
    return removed


def discard(path: pathlib.Path, closer: object = None) -> None:
    """Closes ``closer`` and deletes ``path``, never raising (a cleanup inside ``except``)."""
    if closer is not None:
        try:
            closer.close()  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - a full disk fails the close too; the file goes anyway
            log.debug("closing %s failed during cleanup: %s", path, e)
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not remove %s: %s", path, e)
