"""Choosing the answer: the FAQ row asked, the sentence that answers the question's type, or
nothing."""

from __future__ import annotations

import pytest

from knowledge.compose import Passage, compose, question_type
from knowledge.grounding import check_sentence

pytestmark = pytest.mark.unit

RETURNS = ("You can return most items within 30 days of delivery. Opened small appliances "
           "such as blenders can be returned within 14 days if they have not been used with "
           "food. Bedding cannot be returned once the seal is opened.")
WARRANTY_ZH = ("我们的商品默认享受自签收之日起 2 年保修。床垫保修 3 年。"
               "保修不包括使用不当造成的损坏。")
PLEDGE = Passage(1, "What is de-pledge?",
                 "De-pledge is the release of pledged shares back to the owner's free balance.",
                 faq=True)
PLEDGE_OWN = Passage(2, "What is pledge?",
                     "A pledge lets you borrow against your shares while you keep owning them.",
                     faq=True)
LOAN = Passage(3, "How long until a new repayment account takes effect?",
               "A new repayment account takes effect within 3 working days of registration.",
               faq=True)
TENURE = Passage(4, "What is the tenure of a personal loan?",
                 "Personal loans run for 12 to 60 months.", faq=True)


def test_the_sentence_that_answers_is_quoted_and_supported() -> None:
    composed = compose("can I return an opened blender?",
                       [Passage(1, "Returns", RETURNS), Passage(2, "保修", WARRANTY_ZH)])
    assert composed.sentences[0] == (1, "Opened small appliances such as blenders can be "
                                        "returned within 14 days if they have not been used "
                                        "with food.")
    assert all(check_sentence(s, {1: RETURNS}).supported for _, s in composed.sentences)


def test_a_faq_row_is_answered_with_its_own_answer_not_a_neighbours() -> None:
    composed = compose("what does pledge mean?", [PLEDGE, PLEDGE_OWN])
    assert composed.reason == "faq"
    assert composed.sentences == [(2, PLEDGE_OWN.text)]


def test_the_ranked_faq_row_wins_over_a_row_about_something_else() -> None:
    composed = compose("How long until a new repayment account for my loan takes effect?",
                       [LOAN, TENURE])
    assert composed.sentences == [(3, LOAN.text)]


def test_the_question_type_picks_the_sentence_with_a_duration() -> None:
    text = ("Refunds go back to the original payment method. They arrive within 5 to 7 "
            "business days after we have checked your return.")
    composed = compose("how long does a refund take to arrive?", [Passage(1, "Refunds", text)])
    assert composed.sentences[0][1].startswith("They arrive within 5 to 7 business days")


def test_chinese_questions_find_their_sentence() -> None:
    composed = compose("床垫保修多久？", [Passage(1, "保修", WARRANTY_ZH)])
    assert composed.sentences == [(1, "床垫保修 3 年。")]


def test_an_unrelated_question_abstains() -> None:
    composed = compose("who won the football match", [Passage(1, "Returns", RETURNS)])
    assert composed.sentences == [] and composed.reason in {"not_covered", "empty"}


def test_a_year_the_passage_never_states_means_abstaining() -> None:
    text = ("The Normans gave their name to Normandy in the 10th and 11th centuries. "
            "Their leader Rollo swore fealty to King Charles III.")
    answered = compose("When did the Normans give their name to Normandy?",
                       [Passage(1, "Normans", text)])
    assert answered.sentences and "10th and 11th centuries" in answered.sentences[0][1]
    changed = compose("Who gave their name to Normandy in 1066?", [Passage(1, "Normans", text)])
    assert changed.sentences == [] and changed.reason == "number_missing"


@pytest.mark.parametrize(("question", "kind"), [
    ("How many days do I have?", "number"), ("退货要多久？", "number"),
    ("When was it built?", "time"), ("什么时候发货？", "time"),
    ("Who founded it?", "person"), ("Where is it?", "place"), ("Can I pay by card?", None),
])
def test_question_types(question: str, kind: str | None) -> None:
    assert question_type(question) == kind


def test_a_request_about_nothing_in_the_sources_abstains_even_when_close_in_meaning() -> None:
    returns = Passage(1, "退货", "在我们审核申请之前，您不需要先把商品寄给我们。")
    composed = compose("给我讲个笑话吧", [returns],
                       similarity=lambda sentences: [0.9] * len(sentences))
    assert composed.sentences == []


def test_when_two_sources_disagree_the_better_ranked_one_answers() -> None:
    edited = Passage(1, "Returns at a glance",
                     "You can return most items within 45 days of delivery, for any reason.")
    policy = Passage(2, "Return policy", "You can return most items within 30 days of delivery, "
                                         "for any reason, as long as they are unused.")
    composed = compose("how many days do I have to return something", [edited, policy])
    assert composed.sentences == [(1, edited.text)]
