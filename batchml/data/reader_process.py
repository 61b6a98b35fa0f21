"""Reading in a process of its own, batches handed over through shared memory.

Reading threads share the training process's GIL, and uproot's work per basket
holds it about half the time: a training step that waits on a GPU then wakes
and waits for the GIL, and one that runs Python (launching kernels) competes
for it; with a step partly in Python, prefetch gains more from a process than
from threads (BENCHMARKS.md, data run 5). torch's DataLoader workers avoid the
GIL too, but move every batch into a new shared-memory segment and through a
pickle, which costs the training process more per batch than a small model's
step. Here a ring of fixed slots is mapped once, before the fork; a batch
costs the training process one copy out of its slot and two short pipe
messages (``reader_messages.py``).

The process is forked at the first epoch and serves every later one of the same
reader; it runs the thread pipeline of ``stream.py`` (read-ahead, the next
epoch's first chunk), so it yields exactly the batches the threads would. It
ends when the stream is closed or dropped, when an epoch is left unfinished,
and on its own when the training process is gone.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import select
import signal
import traceback
import weakref
from collections.abc import Callable, Iterator

import numpy as np

from batchml.data.columns import Rows, Table
from batchml.data.errors import DataError
from batchml.data.reader_messages import (
    NUMBER,
    BatchReady,
    Command,
    DropReadAhead,
    EpochDone,
    EpochFailed,
    ReadEpoch,
    SlotFreed,
    decode_command,
    read_reply,
)


def can_fork() -> bool:
    return hasattr(os, "fork")


class ReaderProcess:
    """A forked process running ``serve(epoch)`` for each epoch asked of it.

    serve: the epoch's batches as records (``columns.Rows``), split into columns
    as they are copied into their slot.
    drop: run in the process by ``drop`` (to drop what it read ahead).
    row: the records' dtype; a slot holds ``batch_size`` rows of each field, column by column.
    slots: how many batches may wait (the budget).
    """

    def __init__(
        self,
        serve: Callable[[int], Iterator[Rows]],
        drop: Callable[[], None],
        row: np.dtype[np.void],
        batch_size: int,
        slots: int,
        prepare: Callable[[], None] = lambda: None,
    ) -> None:
        self._layout = []
        offset = 0
        for name in row.names or ():
            field = row[name]
            self._layout.append((name, field.base, field.shape, offset))
            offset += batch_size * field.itemsize
        self._slot_bytes = offset
        self._slots = max(1, slots)
        self._ring = mmap.mmap(-1, self._slots * offset)  # shared with the child
        to_child, self._commands = os.pipe()
        self._messages, from_child = os.pipe()
        freed_in, self._freed = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the reader: never returns
            # What the parent holds belongs to the parent: its garbage, collected here,
            # would run finalizers that act outside the process (a closed dask-jobqueue
            # cluster's credential files, unlinked under the parent's feet).
            gc.freeze()
            for fd in (self._commands, self._messages, self._freed):
                os.close(fd)
            code = 0
            try:
                prepare()
                _Serving(self, serve, drop, to_child, from_child, freed_in, parent).run()
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        for fd in (to_child, from_child, freed_in):
            os.close(fd)
        self.pid = pid
        self.busy = False  # an epoch is being read
        self._finalizer = weakref.finalize(
            self, _stop, pid, (self._commands, self._messages, self._freed)
        )

    def batches(self, epoch: int) -> Iterator[Table]:
        """The epoch's tables, each copied out of its slot; leaving early ends the process."""
        return self._carry_out(ReadEpoch(epoch))

    def drop(self) -> None:
        """Have the process drop what it read ahead for the next epoch; wait for it."""
        for _ in self._carry_out(DropReadAhead()):
            pass

    def _carry_out(self, command: Command) -> Iterator[Table]:
        """Send ``command`` and yield the batches it makes until it is done."""
        finished, self.busy = False, True
        try:
            self._write(self._commands, command.encode())
            while True:
                reply = read_reply(self._read)
                if isinstance(reply, EpochDone):
                    finished, self.busy = True, False
                    return
                if isinstance(reply, EpochFailed):
                    finished, self.busy = True, False
                    raise reply.error
                table = self._table(reply.slot, reply.rows)
                self._write(self._freed, SlotFreed(reply.slot).encode())
                yield table
        finally:
            if not finished:
                self.close()

    def _table(self, slot: int, rows: int) -> Table:
        """The slot's rows, copied out at once into one block that the columns view."""
        return self._columns(self._slot(slot).copy(), rows)

    def _slot(self, slot: int) -> np.ndarray:
        return np.frombuffer(self._ring, np.uint8, self._slot_bytes, slot * self._slot_bytes)

    def _columns(self, block: np.ndarray, rows: int) -> Table:
        """Each column's first ``rows`` rows, as views of a slot's bytes."""
        return {
            name: block[offset:].view(dtype)[: rows * int(np.prod(shape))].reshape(rows, *shape)
            for name, dtype, shape, offset in self._layout
        }

    def _write(self, fd: int, message: bytes) -> None:
        try:
            os.write(fd, message)
        except BrokenPipeError:
            raise self._gone() from None

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = os.read(self._messages, size - len(data))
            if not part:
                raise self._gone()
            data += part
        return data

    def _gone(self) -> DataError:
        return DataError(
            f"the reading process {self.pid} ended unexpectedly ({self._finalizer()})",
            hint="look for an out-of-memory kill; or read in threads: prefetch_in='thread'",
        )

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    def close(self) -> None:
        """End the process and wait for it."""
        self._finalizer()


class _Serving:
    """The child's side: epochs in, slot numbers out."""

    def __init__(
        self,
        process: ReaderProcess,
        serve: Callable[[int], Iterator[Rows]],
        drop: Callable[[], None],
        commands: int,
        messages: int,
        freed: int,
        parent: int,
    ) -> None:
        self.process, self.serve, self.drop = process, serve, drop
        self.commands, self.messages, self.freed = commands, messages, freed
        self.parent = parent
        self.free = list(range(process._slots))

    def run(self) -> None:
        while True:
            received = self._receive(self.commands, NUMBER.size)
            if received is None:
                return
            command = decode_command(received)
            try:
                if isinstance(command, DropReadAhead):
                    self.drop()
                else:
                    for rows in self.serve(command.epoch):
                        self._send(rows)
                os.write(self.messages, EpochDone().encode())
            except Exception as exc:
                os.write(self.messages, EpochFailed(exc).encode())

    def _send(self, rows: Rows) -> None:
        """Copy the rows into a free slot, field by field (the columns the consumer takes)."""
        if not self.free:
            freed = self._receive(self.freed, NUMBER.size)
            if freed is None:
                raise SystemExit(0)
            self.free.append(SlotFreed.decode(freed).slot)
        slot = self.free.pop()
        for name, view in self.process._columns(self.process._slot(slot), len(rows)).items():
            view[...] = rows[name]
        os.write(self.messages, BatchReady(slot, len(rows)).encode())

    def _receive(self, fd: int, size: int) -> bytes | None:
        """``size`` bytes from ``fd``; None once the training process is gone."""
        data = b""
        while len(data) < size:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if os.getppid() != self.parent:
                    return None
                continue
            part = os.read(fd, size - len(data))
            if not part:
                return None
            data += part
        return data


def _stop(pid: int, fds: tuple[int, ...]) -> str:
    """Close our ends, kill the process (a zombie, if it ended, until reaped) and reap it."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return _reap(pid)


def _reap(pid: int) -> str:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
