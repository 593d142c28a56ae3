"""The task ``Journal`` contract (``workers.context.Journal``), and what both queues read back.

Subclass ``JournalContract`` in a test module, provide a ``journal`` fixture that yields an
empty journal, and implement ``queued(journal, task)``: record a new queued task the way that
journal's queue does, and return its id.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest


class JournalContract:
    def queued(self, journal: Any, task: str) -> str:
        raise NotImplementedError

    # -- attempts and states ----------------------------------------------------------------

    def test_a_queued_task_is_pending_until_it_finishes(self, journal: Any) -> None:
        task_id = self.queued(journal, "index_document")
        assert journal.status(task_id) == {"id": task_id, "task": "index_document",
                                           "state": "queued", "attempts": 0, "error": ""}
        assert journal.pending() == 1
        assert journal.begin(task_id, "index_document") == 1
        assert journal.status(task_id)["state"] == "running"
        assert journal.pending() == 1
        journal.finish(task_id, "done")
        assert journal.status(task_id)["state"] == "done"
        assert journal.pending() == 0
        assert journal.status("no-such-task") is None

    def test_every_start_is_an_attempt_and_a_retry_keeps_its_error(self, journal: Any) -> None:
        task_id = self.queued(journal, "index_document")
        assert journal.begin(task_id, "index_document") == 1
        journal.finish(task_id, "retry", error="ConnectionError: down")
        assert journal.status(task_id)["error"] == "ConnectionError: down"
        assert journal.pending() == 1
        assert journal.begin(task_id, "index_document") == 2
        journal.finish(task_id, "dead", error="ConnectionError: still down")
        status = journal.status(task_id)
        assert (status["state"], status["attempts"], status["error"]) == (
            "dead", 2, "ConnectionError: still down")
        assert journal.pending() == 0

    @pytest.mark.parametrize("final", ["done", "skipped", "dead"])
    def test_a_finished_task_is_not_begun_again_and_keeps_its_state(
            self, journal: Any, final: str) -> None:
        """A broker delivers at least once: a second delivery must change nothing."""
        task_id = self.queued(journal, "index_document")
        journal.begin(task_id, "index_document")
        journal.finish(task_id, final)
        assert journal.begin(task_id, "index_document") is None
        journal.finish(task_id, "done" if final != "done" else "skipped")  # a late duplicate
        status = journal.status(task_id)
        assert (status["state"], status["attempts"]) == (final, 1)

    # -- dead letters -----------------------------------------------------------------------

    def test_dead_letters_keep_what_failed_oldest_first(self, journal: Any) -> None:
        first = journal.add_dead_letter(task="index_document", payload={"doc_id": "kettle",
                                        "text": "Entkalken mit Zitronensäure"},
                                        error="ParseError: empty", attempts=3, task_id="t1")
        time.sleep(0.01)
        second = journal.add_dead_letter(task="kafka.change", payload={"event": "{"},
                                         error="not JSON", attempts=0)
        letters = journal.dead_letters()
        assert [d["id"] for d in letters] == [first, second]
        assert {k: v for k, v in letters[0].items() if k != "created"} == {
            "id": first, "task": "index_document", "task_id": "t1",
            "payload": {"doc_id": "kettle", "text": "Entkalken mit Zitronensäure"},
            "error": "ParseError: empty", "attempts": 3}
        assert letters[1]["task_id"] is None
        assert isinstance(letters[0]["created"], float)

    def test_a_keyed_dead_letter_is_kept_once(self, journal: Any) -> None:
        first = journal.add_dead_letter(task="kafka.change", payload={"event": "{"},
                                        error="not JSON", attempts=0, key="kafka:t[0]@7")
        again = journal.add_dead_letter(task="kafka.change", payload={"event": "{"},
                                        error="not JSON", attempts=0, key="kafka:t[0]@7")
        assert again == first
        assert [d["id"] for d in journal.dead_letters()] == [first]

    def test_a_payload_that_is_not_json_is_kept_as_text(self, journal: Any) -> None:
        journal.add_dead_letter(task="kafka.change", payload={"raw": b"\xff"},
                                error="unreadable", attempts=0)
        (letter,) = journal.dead_letters()
        assert letter["payload"] == {"raw": "b'\\xff'"}

    # -- applied versions and locks ---------------------------------------------------------

    def test_applied_versions_are_recorded_and_forgotten(self, journal: Any) -> None:
        assert journal.applied_version("kettle") is None
        journal.set_applied_version("kettle", 3)
        journal.set_applied_version("kettle", 4)
        journal.set_applied_version("blender", 1)
        assert (journal.applied_version("kettle"), journal.applied_version("blender")) == (4, 1)
        journal.set_applied_version("kettle", None)
        assert journal.applied_version("kettle") is None
        journal.set_applied_version("kettle", None)  # forgetting twice is fine
        assert journal.applied_version("blender") == 1

    def test_a_lock_makes_a_second_holder_wait(self, journal: Any) -> None:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with journal.lock("doc_id:kettle", 5, owner="first"):
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(5)
            threading.Timer(0.2, release.set).start()
            started = time.monotonic()
            with journal.lock("doc_id:kettle", 5, owner="second"):
                waited = time.monotonic() - started
            assert waited >= 0.15
            with journal.lock("doc_id:blender", 5, owner="second"):
                pass  # another document's lock is free
        finally:
            release.set()
            holder.join(5)

    def test_a_lock_is_free_again_after_an_error(self, journal: Any) -> None:
        with pytest.raises(RuntimeError), journal.lock("doc_id:kettle", 5, owner="t1"):
            raise RuntimeError("the body failed")
        with journal.lock("doc_id:kettle", 1, owner="t2"):
            pass
