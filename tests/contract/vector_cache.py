"""The ``VectorCache`` contract (``knowledge.vector_cache``), written once for every cache.

Subclass ``VectorCacheContract`` and provide a ``pair`` fixture: ``pair()`` returns two caches
over the same storage, as two processes of one deployment would open it. The fixture closes
what it made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knowledge.vector_cache import key


def vector(seed: int, dim: int = 384) -> np.ndarray:
    row = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return row / np.linalg.norm(row)


class VectorCacheContract:
    def test_a_vector_written_by_one_process_is_read_by_another(self, pair: Any) -> None:
        writer, reader = pair()
        k = key("e5", "Returns are free within 30 days.")
        writer.put({k: vector(1)})
        found = reader.get([k])
        assert list(found) == [k]
        assert found[k].dtype == np.float32 and np.array_equal(found[k], vector(1))

    def test_only_stored_keys_come_back(self, pair: Any) -> None:
        writer, reader = pair()
        stored = {key("e5", f"sentence {n}"): vector(n) for n in range(3)}
        writer.put(stored)
        asked = [key("e5", "never stored"), *stored, key("other model", "sentence 1")]
        found = reader.get(asked)
        assert set(found) == set(stored)
        assert all(np.array_equal(found[k], v) for k, v in stored.items())
        assert reader.get([]) == {}

    def test_a_write_replaces_the_vector_under_its_key(self, pair: Any) -> None:
        writer, reader = pair()
        k = key("e5", "退货免费。")
        writer.put({k: vector(1)})
        writer.put({k: vector(2)})
        assert np.array_equal(reader.get([k])[k], vector(2))

    def test_more_keys_than_one_query_holds(self, pair: Any) -> None:
        writer, reader = pair()
        stored = {key("e5", f"s{n}"): vector(n, dim=8) for n in range(1_234)}
        writer.put(stored)
        found = reader.get(list(stored))
        assert len(found) == 1_234 and np.array_equal(found[key("e5", "s777")], vector(777, 8))
