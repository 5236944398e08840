"""Atomic file writes for every writer that replaces a file in place (stage: I/O).

Input: a path and a function that writes the new content to a binary file.
Output: the file at ``path`` holds either its previous content or the whole new
content, never a part: the content goes to a temporary sibling, which is renamed
over ``path`` once complete. On any failure the temporary file is deleted
without raising again over the original error, and a full disk becomes one
:class:`~mm_jax.errors.DiskFullError` naming the file, the free space and the
size needed (docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
import pathlib
from typing import BinaryIO, Callable

from mm_jax.errors import DiskFullError


def write_atomic(path: pathlib.Path, write: Callable[[BinaryIO], None], *, needed: int,
                 tmp: pathlib.Path | None = None) -> None:
    """Writes ``path`` through ``tmp`` (default ``.NAME.tmp-PID``) and a rename.

    Args:
      path: the file to replace.
      write: writes the whole new content to the open binary file it is given.
      needed: the content's size in bytes, for a full disk's message.
      tmp: the temporary sibling.

    Raises:
      DiskFullError: the disk is full; the temporary file is deleted and
        ``path`` keeps its previous content.
    """
    path = pathlib.Path(path)
    tmp = tmp or path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # never raise again while handling the write's own error
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError.of(tmp, e, needed=needed,
                                   note=f"deleted the temporary file; {path} keeps its previous content") from None
        raise
