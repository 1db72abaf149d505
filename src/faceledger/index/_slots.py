"""Id bookkeeping shared by the backends: sorted id sets and id ↔ storage-slot tables.

Plain sorted numpy arrays (16 bytes per template) instead of Python dicts (~100 bytes), so
the bookkeeping stays small and vectorised at millions of templates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError
from faceledger.index.base import IdArray, as_ids

_EMPTY = np.empty(0, dtype=np.int64)


def with_room(rows: npt.NDArray[np.float32], need: int, used: int) -> npt.NDArray[np.float32]:
    """``rows`` (vectors by slot) with room for at least ``need`` rows: grown by half when
    full, the first ``used`` rows copied over; the same array when it already fits."""
    if need <= rows.shape[0]:
        return rows
    grown = np.empty((max(need, int(rows.shape[0] * 1.5)), rows.shape[1]), dtype=np.float32)
    grown[:used] = rows[:used]
    return grown


class IdSet:
    """A set of int64 ids kept as one sorted array."""

    def __init__(self, ids: IdArray = _EMPTY) -> None:
        self._ids = np.unique(ids).astype(np.int64)
        if self._ids.size != ids.size:
            raise IntegrityError("duplicate ids in a stored id set")

    def __len__(self) -> int:
        return int(self._ids.size)

    def sorted(self) -> IdArray:
        return self._ids.copy()

    def view(self) -> IdArray:
        return self._ids

    def contains(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        if self._ids.size == 0 or ids.size == 0:
            return np.zeros(ids.shape, dtype=np.bool_)
        pos = np.searchsorted(self._ids, ids)
        pos = np.minimum(pos, self._ids.size - 1)
        return np.asarray(self._ids[pos] == ids)

    def insert(self, ids: IdArray) -> None:
        """Insert ids known to be new and distinct."""
        new = np.sort(ids)
        self._ids = np.insert(self._ids, np.searchsorted(self._ids, new), new)

    def delete(self, ids: IdArray) -> IdArray:
        """Delete the present ids among ``ids``; returns those deleted."""
        hit = self.contains(ids)
        gone = np.unique(ids[hit])
        if gone.size:
            self._ids = np.delete(self._ids, np.searchsorted(self._ids, gone))
        return gone

    @property
    def nbytes(self) -> int:
        return int(self._ids.nbytes)


class SlotTable:
    """Maps external ids to dense storage slots 0..n_slots-1; removed slots become tombstones.

    Backends whose storage cannot delete in place (faiss HNSW, appended arrays) keep
    vectors by slot, zero a removed slot's vector (so its bytes are gone) and skip it in
    search; :meth:`compact` renumbers the live slots when the dead share grows.
    """

    def __init__(self) -> None:
        self._labels = np.empty(0, dtype=np.int64)  # slot -> external id, -1 = dead
        self._n = 0
        self._keys = _EMPTY.copy()  # sorted live external ids
        self._slots = _EMPTY.copy()  # slot of each key
        self._bitmap: npt.NDArray[np.uint8] | None = None

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return self._n

    def __len__(self) -> int:
        return int(self._keys.size)

    @property
    def n_dead(self) -> int:
        return self._n - int(self._keys.size)

    @property
    def dead_fraction(self) -> float:
        return self.n_dead / self._n if self._n else 0.0

    @property
    def nbytes(self) -> int:
        return int(self._labels.nbytes + self._keys.nbytes + self._slots.nbytes)

    # -- lookups ----------------------------------------------------------------------------
    def ids(self) -> IdArray:
        return self._keys.copy()

    def lookup(self, ids: IdArray) -> IdArray:
        """Slot of each id, -1 where absent."""
        if self._keys.size == 0 or ids.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys, ids), self._keys.size - 1)
        return np.where(self._keys[pos] == ids, self._slots[pos], -1)

    def contains(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        return np.asarray(self.lookup(ids) >= 0)

    def labels(self, slots: IdArray) -> IdArray:
        """External ids of slots (any shape); -1 stays -1."""
        safe = np.where(slots >= 0, slots, 0)
        return np.where(slots >= 0, self._labels[safe], -1)

    def labels_of_live(self, slots: npt.NDArray[np.integer]) -> IdArray:
        """External ids of slots known to be live: one gather, no tombstone check."""
        out: IdArray = self._labels[slots]
        return out

    def live_slots(self) -> IdArray:
        return np.flatnonzero(self._labels[: self._n] >= 0).astype(np.int64)

    def dead_slots(self) -> IdArray:
        return np.flatnonzero(self._labels[: self._n] < 0).astype(np.int64)

    def live_bitmap(self) -> npt.NDArray[np.uint8]:
        """Little-endian bit per slot, 1 = live (the layout faiss.IDSelectorBitmap reads)."""
        if self._bitmap is None:
            self._bitmap = np.packbits(self._labels[: self._n] >= 0, bitorder="little")
        return self._bitmap

    # -- mutation ---------------------------------------------------------------------------
    def append(self, ids: IdArray) -> IdArray:
        """Give new, distinct ids the next slots; returns those slots."""
        slots = np.arange(self._n, self._n + ids.size, dtype=np.int64)
        if self._n + ids.size > self._labels.size:
            grown = max(self._n + ids.size, int(self._labels.size * 1.5) + 16)
            labels = np.full(grown, -1, dtype=np.int64)
            labels[: self._n] = self._labels[: self._n]
            self._labels = labels
        self._labels[slots] = ids
        self._n += ids.size
        order = np.argsort(ids, kind="stable")
        where = np.searchsorted(self._keys, ids[order])
        self._keys = np.insert(self._keys, where, ids[order])
        self._slots = np.insert(self._slots, where, slots[order])
        self._bitmap = None
        return slots

    def kill(self, ids: IdArray) -> IdArray:
        """Turn the slots of the present ids into tombstones; returns those slots."""
        slots = self.lookup(ids)
        hit = slots >= 0
        if not hit.any():
            return _EMPTY.copy()
        gone_ids, first = np.unique(ids[hit], return_index=True)
        gone_slots = slots[hit][first]
        pos = np.searchsorted(self._keys, gone_ids)
        self._keys = np.delete(self._keys, pos)
        self._slots = np.delete(self._slots, pos)
        self._labels[gone_slots] = -1
        self._bitmap = None
        return gone_slots

    def compact(self) -> IdArray:
        """Renumber live slots densely; returns the old slot of each new slot (in order)."""
        keep = self.live_slots()
        labels = self._labels[keep]
        self._labels = labels.copy()
        self._n = int(keep.size)
        order = np.argsort(labels, kind="stable")
        self._keys = labels[order]
        self._slots = order.astype(np.int64)
        self._bitmap = None
        return keep

    # -- persistence ------------------------------------------------------------------------
    def slot_labels(self) -> IdArray:
        """Slot -> external id (-1 dead) for the used slots; all that persistence needs."""
        return self._labels[: self._n].copy()

    @classmethod
    def from_labels(cls, labels: IdArray) -> SlotTable:
        table = cls()
        labels = np.asarray(labels, dtype=np.int64)
        live = np.flatnonzero(labels >= 0)
        keys = labels[live]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if keys.size > 1 and (keys[1:] == keys[:-1]).any():
            raise IntegrityError("an id occupies two slots in a stored index")
        table._labels = labels.copy()
        table._n = int(labels.size)
        table._keys = keys
        table._slots = live[order].astype(np.int64)
        return table


class SlotMembership:
    """Size, ids and membership of an index whose ids live in ``self._slots``.

    Mixed in before :class:`~faceledger.index.base.VectorIndex` by the slot-based backends.
    """

    _slots: SlotTable

    def __len__(self) -> int:
        return len(self._slots)

    def ids(self) -> IdArray:
        return self._slots.ids()

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        return self._slots.contains(as_ids(ids))

    def _slots_of(self, ids: IdArray) -> IdArray:
        """The slot of each id, all of which must be stored (a re-rank's shortlist)."""
        slots = self._slots.lookup(ids)
        if (slots < 0).any():
            raise IntegrityError("a shortlisted id is not in the index")
        return slots
