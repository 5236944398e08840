"""Graceful stops of the training loops on SIGINT / SIGTERM (stage: train).

Input: the process's signals, for the span of a ``with`` block. Output: a
:class:`StopRequest` that the training loops (decoder, tokenizer, evaluator)
read after every step. The CLI creates it around one run::

    with stop_on_signals() as stop:
        summary = train.run(exp, workdir, stop=stop)
    if stop.stopped_at is not None: ...   # one line, exit 0 (SIGTERM) or 130 (SIGINT)

The handler only records the signal; the loop finishes the step it is in,
saves a checkpoint at that step, records it in ``stopped_at`` and returns,
so ``--resume`` continues exactly as after a kill -9 (but without losing the
steps since the last checkpoint). A second SIGINT raises
``KeyboardInterrupt`` at once, for a run stuck before its next step check.
The previous handlers are restored when the block ends.

Multi-host jobs keep JAX's own SIGTERM handling (its preemption service
agrees on one step for all hosts, see :mod:`mm_jax.checkpoint`); a per-host
flag would stop the hosts at different steps, so no handler is installed there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from typing import Iterator

log = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGTERM: 0, signal.SIGINT: 130}  # 130 = 128 + SIGINT, the shell's convention


@dataclasses.dataclass
class StopRequest:
    """A request to stop a training loop after its current step.

    Attributes:
      signum: the signal received (None: none yet); tests set it directly.
      stopped_at: set by the loop when it honoured the request: the step it
        saved and stopped at.
    """

    signum: int | None = None
    stopped_at: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def exit_code(self) -> int:
        """0 after SIGTERM (a scheduler's normal stop), 130 after SIGINT, 1 for any other signal."""
        return EXIT_CODES.get(self.signum, 1)


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), *,
                    multi_host: bool = False) -> Iterator[StopRequest]:
    """Yields a StopRequest that ``signals`` set, for the ``with`` block (then the old handlers return).

    Outside the main thread, or when ``multi_host`` is true, no handler is
    installed (the request then only stops when set directly).
    """
    stop = StopRequest()
    if multi_host or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame) -> None:  # noqa: ARG001
        if signum == signal.SIGINT and stop.signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: stop now
        if stop.signum is None:
            stop.signum = signum

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
