"""Order ids have the shape the project gives (``orders:`` in parley.yml), not the demo's: the
NLU service finds them, the order form accepts them, the rest is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.orders import ValidateOrderStatusForm
from bot.scaffold import scaffold
from core.config import get_settings
from core.order_ids import OrderIds
from core.project import ProjectError, load_project, order_ids_of
from core.redact import redact
from nlu.patterns import pattern_spans
from tests.unit.test_actions import tracker

pytestmark = pytest.mark.unit

ACME = OrderIds("AB", 8)
DIGITS = OrderIds("", 7)


@pytest.mark.parametrize(("written", "expected"), [
    ("where is ab 20481733?", "AB-20481733"), ("订单AB20481733还没到", "AB-20481733"),
    ("#AB-20481733 please", "AB-20481733")])
def test_the_nlu_reads_the_projects_ids_however_they_are_written(written: str,
                                                                 expected: str) -> None:
    (span,) = [s for s in pattern_spans(written, ACME) if s.entity == "order_id"
               and s.confidence == 1.0]
    assert span.value == expected


def test_a_bare_id_is_found_in_chinese_text() -> None:
    (candidate,) = [s for s in pattern_spans("我的订单2048173到哪了", DIGITS)
                    if s.entity == "order_id"]
    assert candidate.value == "2048173"


def test_another_format_is_not_an_order_id_there() -> None:
    assert not [s for s in pattern_spans("where is PL-204817?", ACME)
                if s.entity == "order_id" and s.confidence == 1.0]
    # Without a prefix a bare number is only a candidate, for the form to check.
    (candidate,) = [s for s in pattern_spans("order 2048173", DIGITS) if s.entity == "order_id"]
    assert candidate.value == "2048173" and candidate.confidence < 1


@pytest.mark.parametrize(("ids", "value", "canonical", "valid"), [
    (ACME, "ab 20481733", "AB-20481733", True), (ACME, "AB-2048173", "AB-2048173", False),
    (ACME, "PL-204817", "PL-204817", False), (DIGITS, "#2048173", "2048173", True),
    (DIGITS, "20481733", "20481733", False)])
def test_ids_are_normalised_and_checked(ids: OrderIds, value: str, canonical: str,
                                       valid: bool) -> None:
    assert ids.normalise(value) == canonical
    assert ids.valid(ids.normalise(value)) is valid


def project(tmp_path: Path, orders: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "parley.yml").write_text(f"company:\n  name: Acme\n{orders}", encoding="utf-8")
    return tmp_path


def test_the_format_comes_from_parley_yml(tmp_path: Path) -> None:
    root = project(tmp_path, "orders:\n  id_prefix: AB\n  id_digits: 8\n")
    assert load_project(root).orders.ids == ACME
    assert order_ids_of(root) == ACME
    assert order_ids_of(project(tmp_path / "plain", "")) == OrderIds()  # digits alone


@pytest.mark.parametrize("orders", ["orders:\n  id_prefix: A-B\n",
                                    "orders:\n  id_digits: 2\n",
                                    "orders:\n  id_format: x\n"])
def test_a_bad_format_is_reported_with_its_line(tmp_path: Path, orders: str) -> None:
    with pytest.raises(ProjectError, match=r"parley\.yml:\d"):
        load_project(project(tmp_path, orders))


async def test_the_order_form_takes_the_projects_format(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_PROJECT", str(project(tmp_path, "orders:\n  id_prefix: AB\n"
                                                               "  id_digits: 8\n")))
    get_settings.cache_clear()
    try:
        form = ValidateOrderStatusForm()
        assert await form.validate_order_id("ab 20481733", CollectingDispatcher(), tracker(),
                                            {}) == {"order_id": "AB-20481733"}
        refused = CollectingDispatcher()
        assert await form.validate_order_id("PL-204817", refused, tracker(), {}) == {
            "order_id": None}
        assert refused.messages[0]["response"] == "utter_invalid_order_id"
    finally:
        get_settings.cache_clear()


def test_exports_mask_the_projects_ids_and_leave_product_codes() -> None:
    assert redact("where is ab 20481733? the RTX4090 one", ACME) == \
        "where is [order]? the RTX4090 one"
    assert redact("我的订单2048173还没到，型号BL2000", DIGITS) == \
        "我的订单[order]还没到，型号BL2000"
    assert redact("where is PL-204817?") == "where is [order]?"  # the demo, configured


def test_parley_check_reports_orders_of_another_shape(tmp_path: Path) -> None:
    """A project whose orders.yml holds ids parley.yml's ``orders:`` does not describe would
    refuse every customer's id: ``parley check`` names the first one and its line."""
    from tests.unit.test_projects import problems

    acme = tmp_path / "acme"
    scaffold(acme, name="Acme", languages=["en"])  # orders: digits alone, 6 of them
    (acme / "company").mkdir(exist_ok=True)
    (acme / "company" / "orders.yml").write_text(
        "orders:\n  - id: '204817'\n    customer: C-1\n  - id: PL-310552\n    customer: C-2\n",
        encoding="utf-8")
    (found,) = [p for p in problems(acme, tmp_path) if "order id" in p]
    assert "orders.yml:4" in found and "'PL-310552'" in found
    text = (acme / "parley.yml").read_text(encoding="utf-8")
    (acme / "parley.yml").write_text(text.replace("id_prefix: ''", "id_prefix: PL"),
                                     encoding="utf-8")
    (acme / "company" / "orders.yml").write_text(
        "orders:\n  - id: PL-204817\n    customer: C-1\n", encoding="utf-8")
    assert not [p for p in problems(acme, tmp_path) if "order id" in p]
