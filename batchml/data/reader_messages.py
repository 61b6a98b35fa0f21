"""What the training process and its reading process say to each other, on three pipes.

Commands go to the reader (read an epoch, drop what was read ahead), replies
come back (a batch is ready in a slot, the epoch ended, it failed), and the
training process hands each slot back once it has copied the batch out. Each
message is a fixed-size record (an error's pickle follows its record), so a
reader needs no framing beyond reading the record's size; the batches
themselves never cross a pipe (see ``reader_process.py``).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from batchml.data.errors import DataError
from batchml.errors import BatchmlError

NUMBER = struct.Struct("<q")  # a command or a freed slot
_REPLY = struct.Struct("<iqq")  # kind, slot or byte count, rows
_DROP = -1  # the command that drops what was read ahead (epochs are >= 0)


class _Kind(IntEnum):
    BATCH = 1
    END = 2
    ERROR = 3


@dataclass(frozen=True)
class ReadEpoch:
    """Read this epoch of the reader's shard, into the slots."""

    epoch: int

    def encode(self) -> bytes:
        return NUMBER.pack(self.epoch)


@dataclass(frozen=True)
class DropReadAhead:
    """Drop the next epoch's first chunk read ahead (its files stay open)."""

    def encode(self) -> bytes:
        return NUMBER.pack(_DROP)


Command = ReadEpoch | DropReadAhead


def decode_command(data: bytes) -> Command:
    (number,) = NUMBER.unpack(data)
    return DropReadAhead() if number == _DROP else ReadEpoch(number)


@dataclass(frozen=True)
class SlotFreed:
    """The training process copied this slot's batch out: the reader may fill it again."""

    slot: int

    def encode(self) -> bytes:
        return NUMBER.pack(self.slot)

    @classmethod
    def decode(cls, data: bytes) -> SlotFreed:
        return cls(NUMBER.unpack(data)[0])


@dataclass(frozen=True)
class BatchReady:
    """A batch of ``rows`` rows waits in ``slot``."""

    slot: int
    rows: int

    def encode(self) -> bytes:
        return _REPLY.pack(_Kind.BATCH, self.slot, self.rows)


@dataclass(frozen=True)
class EpochDone:
    """The command was carried out: every batch of the epoch was sent, or the drop done."""

    def encode(self) -> bytes:
        return _REPLY.pack(_Kind.END, 0, 0)


@dataclass(frozen=True)
class EpochFailed:
    """The command failed with ``error``, which the training process raises."""

    error: BaseException

    def encode(self) -> bytes:
        data = _portable(self.error)
        return _REPLY.pack(_Kind.ERROR, len(data), 0) + data


Reply = BatchReady | EpochDone | EpochFailed


def read_reply(read: Callable[[int], bytes]) -> Reply:
    """The next reply, from ``read(n)``, which returns exactly ``n`` bytes."""
    kind, value, rows = _REPLY.unpack(read(_REPLY.size))
    if kind == _Kind.BATCH:
        return BatchReady(value, rows)
    if kind == _Kind.END:
        return EpochDone()
    return EpochFailed(pickle.loads(read(value)))


def _portable(exc: BaseException) -> bytes:
    """The error pickled for the training process: whole if it can be, else its text."""
    try:
        return pickle.dumps(exc.detached() if isinstance(exc, BatchmlError) else exc)
    except Exception:
        return pickle.dumps(DataError(f"{type(exc).__name__}: {exc}"))
