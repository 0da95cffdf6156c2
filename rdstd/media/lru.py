"""A small least-recently-used cache, shared by the readers (row groups, shards, video decoders, file scans)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``size`` values; the least recently used is dropped first (and handed to ``on_evict``)."""

    def __init__(self, size: int, on_evict: Callable[[V], object] | None = None) -> None:
        self.size = size
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value for ``key``, loaded with ``load`` (and kept) when absent."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = load()
        if len(self._items) > self.size:
            _, dropped = self._items.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(dropped)
        return value

    def clear(self) -> None:
        """Drop every value (each handed to ``on_evict``)."""
        while self._items:
            _, dropped = self._items.popitem()
            if self._on_evict is not None:
                self._on_evict(dropped)

    def __len__(self) -> int:
        return len(self._items)
