"""A set of ids in 0 <= id < 2**64 at about 8 bytes an id, for the ids one run has read (order_reads.py).

A Python `set` of a million ints costs ~90 MB (its table plus an int object per id); here the ids live in
one sorted `array('Q')` and only the latest few in a small set. Listings come in ascending id order, so a
flush of the recent ids is nearly always an append; ids out of order are merged in, which copies the
array: the recent set is allowed to grow with the array (1/32 of it) so each id is copied a bounded number
of times.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

_MIN_RECENT = 4096  # ids kept in the plain set before they move to the array


class IdSet:
    def __init__(self) -> None:
        self._sorted = array("Q")  # ascending, no duplicates
        self._recent: set[int] = set()  # not in _sorted
        self._limit = _MIN_RECENT  # flush _recent past this size

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, id_: int) -> bool:
        if id_ in self._recent:
            return True
        ids = self._sorted
        if not ids or id_ > ids[-1]:  # the common case for an ascending listing: no search
            return False
        i = bisect_left(ids, id_)
        return ids[i] == id_

    def add(self, id_: int) -> None:
        if id_ in self._recent:
            return
        ids = self._sorted
        if ids and id_ <= ids[-1]:
            if id_ < 0:
                raise OverflowError(f"id {id_} is below 0")
            if ids[bisect_left(ids, id_)] == id_:
                return
        elif id_ >= 2**64 or id_ < 0:
            raise OverflowError(f"id {id_} is outside 0..2**64-1")
        self._recent.add(id_)
        if len(self._recent) > self._limit:
            self._flush()

    def _flush(self) -> None:
        recent, self._recent = sorted(self._recent), set()
        ids = self._sorted
        if not ids or recent[0] > ids[-1]:
            ids.fromlist(recent)
        else:
            merged, start = array("Q"), 0
            for id_ in recent:  # ascending, so each search starts where the previous one ended
                i = bisect_left(ids, id_, start)
                merged.extend(ids[start:i])
                merged.append(id_)
                start = i
            merged.extend(ids[start:])
            self._sorted = merged
        self._limit = max(_MIN_RECENT, len(self._sorted) >> 5)
