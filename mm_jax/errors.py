"""Named errors of mm_jax.

Every error the library raises on bad input derives from :class:`MmJaxError`,
so callers can catch the family, and each subclass names the kind of problem.
Messages state the bad value and, where there is a finite set, the valid
choices.
"""


class MmJaxError(Exception):
    """Base class of all mm_jax errors."""


class ConfigError(MmJaxError, ValueError):
    """An unknown config key, a bad value or an unknown preset."""


class ShapeError(MmJaxError, ValueError):
    """An array with the wrong rank, width or length."""


class ShardingError(MmJaxError, ValueError):
    """A mesh or sharding rule that does not fit the devices or the array."""


class DataError(MmJaxError, ValueError):
    """Bad data: NaN/inf values, empty text, corrupt or mismatched shards."""


class CheckpointError(MmJaxError, ValueError):
    """A missing checkpoint, or one made with another config."""


class ExportError(MmJaxError, ValueError):
    """A parameter tree that does not map onto the export layout."""


class NonFiniteError(MmJaxError, FloatingPointError):
    """A loss or gradient became NaN or infinite."""


class FormatError(DataError):
    """A file (BVH, dataset, manifest) that does not follow its format."""


class LockError(MmJaxError, RuntimeError):
    """A run or output directory that another live process is writing (named by pid and host)."""


class StorageError(MmJaxError, OSError):
    """A write that failed (a full disk...): names the path, the free space and the space needed."""

    @classmethod
    def of(cls, path, err: BaseException, *, needed: int | None = None, note: str = "") -> "StorageError":
        """``"cannot write PATH: ERR; F MB free there[, about N MB needed][; NOTE]"``."""
        import os
        import shutil

        where = os.path.abspath(path)
        probe = where
        while probe and not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        try:
            space = f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free there"
        except OSError:
            space = "free space unknown"
        need = "" if needed is None else f", about {needed / 1e6:.1f} MB needed"
        return cls(f"cannot write {where}: {err}; {space}{need}" + (f"; {note}" if note else ""))


class DiskFullError(StorageError):
    """No space left on the device (ENOSPC) or quota exceeded while writing; the previous files are kept."""
