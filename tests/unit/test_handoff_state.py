from __future__ import annotations

import pytest

from conversations.models import Conversation
from conversations.state import ALLOWED, State, transition
from core.errors import Conflict

pytestmark = pytest.mark.unit


class _Session:
    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, obj: object) -> None:
        self.added.append(obj)


def test_valid_transition_is_audited():
    conversation = Conversation(id="c", state="bot")
    session = _Session()
    audit = transition(session, conversation=conversation, to=State.QUEUED, actor="bot",  # type: ignore[arg-type]
                       reason="customer_request")
    assert conversation.state == "queued"
    assert (audit.from_state, audit.to_state, audit.actor) == ("bot", "queued", "bot")
    assert session.added == [audit]


@pytest.mark.parametrize("start", list(State))
def test_invalid_transitions_are_refused(start):
    for target in set(State) - ALLOWED[start] - {start} | {start}:
        conversation = Conversation(id="c", state=start)
        with pytest.raises(Conflict) as error:
            transition(_Session(), conversation=conversation, to=target, actor="x", reason="")  # type: ignore[arg-type]
        assert error.value.code == "invalid_transition"
        assert conversation.state == start
