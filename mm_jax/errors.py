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
