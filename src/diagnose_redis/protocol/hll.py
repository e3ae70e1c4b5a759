"""A HyperLogLog built in the process, written to Redis whole in Redis's own dense format,
so that PFCOUNT (and PFMERGE, PFADD) read it as one of theirs.

Why not PFADD: a process sees the same values again and again, and Redis would hash each one
it is sent. Here the process keeps its registers (16,384 of 6 bits, as Redis has them) and
sends them -- 12,304 bytes -- only when one changed: after the first seconds, rarely. Each
element is a 64-bit hash the writer made (keyed BLAKE2b, never the value); its low 14 bits
choose the register and the position of the lowest set bit of the rest is the rank, exactly
as Redis does with its own hash, so Redis's estimator applies unchanged (0.81 % standard
error).

Layout (Redis's ``hllhdr``): ``"HYLL"``, encoding 0 (dense), 3 unused bytes, 8 bytes of
cached cardinality marked stale (bit 7 of the last: PFCOUNT computes it), then the
registers, 6 bits each, least significant bits first.
"""

from __future__ import annotations

__all__ = ("DENSE_SIZE", "REGISTERS", "DenseHLL")

_P = 14
REGISTERS = 1 << _P
_MASK = REGISTERS - 1
_BITS = 6
_Q = 64 - _P
_HEADER = b"HYLL" + bytes(4) + bytes(7) + b"\x80"
DENSE_SIZE = len(_HEADER) + REGISTERS * _BITS // 8


class DenseHLL:
    """The registers of one HyperLogLog, in their dense encoding (12 KiB)."""

    __slots__ = ("_packed",)

    def __init__(self) -> None:
        self._packed = bytearray(REGISTERS * _BITS // 8)

    def register(self, index: int) -> int:
        """Return the value of one register."""
        bit = index * _BITS
        at, shift = bit >> 3, bit & 7
        packed = self._packed
        value = packed[at] >> shift
        if shift > 8 - _BITS:
            value |= packed[at + 1] << (8 - shift)
        return value & 0x3F

    def add(self, element: int) -> bool:
        """Add a 64-bit hash; return True if a register grew."""
        index = element & _MASK
        rest = (element >> _P) | (1 << _Q)
        rank = (rest & -rest).bit_length()
        if rank <= self.register(index):
            return False
        bit = index * _BITS
        at, shift = bit >> 3, bit & 7
        packed = self._packed
        packed[at] = (packed[at] & ~(0x3F << shift) & 0xFF) | ((rank << shift) & 0xFF)
        if shift > 8 - _BITS:
            spill = 8 - shift
            packed[at + 1] = (packed[at + 1] & ~(0x3F >> spill) & 0xFF) | (rank >> spill)
        return True

    def dump(self) -> bytes:
        """Return the HyperLogLog as Redis stores it (a string value for SET)."""
        return _HEADER + bytes(self._packed)
