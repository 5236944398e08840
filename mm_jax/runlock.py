"""One writer per run or output directory (stage: every writer: train, tokenizer, evaluator, shards, synth).

Input: the directory a command writes. Output: an exclusive OS lock held
for a ``with`` block, on ``DIR/.lock`` (:func:`lock_dir`) or, for a target
that is built elsewhere and renamed into place (``data synth`` writes
``.NAME.partial``), on the sibling ``.NAME.lock`` (:func:`lock_target`).

The lock is ``fcntl.flock`` on an open file: the kernel drops it when the
holder's process ends in any way (exit, exception, kill -9, a crash), so a
dead run never leaves a directory locked, and there is nothing to clean up.
The holder writes its pid, host and start time into the file; a second
writer fails at once with :class:`~mm_jax.errors.LockError` naming them.
The file itself stays (empty once released): removing it would let two
processes lock two different files of the same name.

A filesystem without ``flock`` (some network mounts) cannot be locked; the
writer then proceeds with a warning rather than refusing to run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import pathlib
import socket
import time
from typing import Iterator

from mm_jax.errors import LockError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def _holder(fd: int) -> str:
    """``pid N on HOST since TIME`` from the lock file's content (best effort)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"pid {info['pid']} on host {info['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid and host are not recorded yet)"


@contextlib.contextmanager
def hold(lock_file: str | pathlib.Path, *, resource: str | pathlib.Path | None = None) -> Iterator[pathlib.Path]:
    """Holds an exclusive lock on ``lock_file`` (created) for the ``with`` block.

    Args:
      lock_file: the lock file; its directory is created.
      resource: what the lock protects, for the error message (default: the file).

    Raises:
      LockError: another live process holds the lock; the message names its
        pid and host.
    """
    path = pathlib.Path(lock_file).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise LockError(f"{resource or path} is being written by {_holder(fd)}; wait for that run to "
                            f"finish or stop it, or use another directory (lock file {path})") from None
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
            log.warning("%s: the filesystem does not support locks (%s); a second writer is not detected",
                        path, e)
        if locked:
            os.ftruncate(fd, 0)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        if locked:
            with contextlib.suppress(OSError):  # releasing never raises over the block's own error
                os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the lock


def lock_dir(directory: str | pathlib.Path) -> contextlib.AbstractContextManager[pathlib.Path]:
    """Holds ``DIRECTORY/.lock`` (the directory is created): a run directory, a shards directory."""
    directory = pathlib.Path(directory)
    return hold(directory / LOCK_NAME, resource=directory.absolute())


def lock_target(target: str | pathlib.Path) -> contextlib.AbstractContextManager[pathlib.Path]:
    """Holds ``PARENT/.NAME.lock`` beside ``target``: an output built elsewhere and renamed into place."""
    target = pathlib.Path(target).absolute()
    return hold(target.with_name(f".{target.name}.lock"), resource=target)
