"""The ``GraphStore`` contract, written once and run against every implementation.

A test module subclasses ``GraphStoreContract`` and provides an async ``graph`` fixture: a
fresh, empty store per test (tests/unit/test_graph_embedded.py,
tests/integration/test_graph_neo4j.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from core.config import DEMO_PROJECT
from knowledge.graph.company import load_company
from knowledge.graph.errors import (
    GraphError,
    InvalidGraphName,
    InvalidGraphValue,
    MissingEndpoint,
)
from knowledge.graph.protocol import Edge, Fact, GraphStore, Node

COMPANY = DEMO_PROJECT / "company"

BAD_LABELS = ["Product) DETACH DELETE n //", "product", "", "Pro-duct", "Product`", "P" * 41,
              "Product:Order", "Prod uct", "Produkt2"]
BAD_RELS = ["COVERED BY", "covered_by", "X]->() DETACH DELETE n //", "", "REL`", "R" * 41,
            "REL|OTHER", "_REL"]
NASTY = ["it's", 'say "hi"', "`tick`", "'}) DETACH DELETE n //", "$key", "a\\b", "line\nbreak",
         "MATCH (n) DETACH DELETE n", "{\"en\": \"json-looking\"}", "中文 ✓"]

PRODUCT = Node("Product", "NH-BL-200", {
    "name": {"en": "Nimbus PowerBlend 200 Blender", "zh": "Nimbus PowerBlend 200 破壁料理机"},
    "price": 89.9, "warranty_months": 24, "returnable": True,
    "aliases": ["blender", "破壁机"], "sizes": [1, 2], "category": "kitchen_appliances"})


def product(key: str, **props: Any) -> Node:
    return Node("Product", key, props)


def keys(found: list[Node]) -> list[str]:
    return [node.key for node in found]


def reached(links: list[tuple[Edge, Node]]) -> list[tuple[str, str, str, str]]:
    """(reached key, edge src key, rel, edge dst key) per result, in order."""
    return [(node.key, edge.src[1], edge.rel, edge.dst[1]) for edge, node in links]


async def chain(graph: GraphStore) -> None:
    """A -R-> B -R-> C -R-> A (a cycle), B -S-> D, A -R-> C, E alone."""
    await graph.upsert_nodes([Node("Thing", key, {"name": f"thing {key}"}) for key in "ABCDE"])
    await graph.upsert_edges([
        Edge(("Thing", "A"), "R", ("Thing", "B")),
        Edge(("Thing", "B"), "R", ("Thing", "C")),
        Edge(("Thing", "C"), "R", ("Thing", "A")),
        Edge(("Thing", "B"), "S", ("Thing", "D"), {"weight": 2}),
        Edge(("Thing", "A"), "R", ("Thing", "C")),
    ])


class GraphStoreContract:
    """Behaviour every ``GraphStore`` must have. Needs an async ``graph`` fixture."""

    # -- nodes ---------------------------------------------------------------------------

    async def test_node_round_trip_keeps_types(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([PRODUCT])
        got = await graph.get("Product", "NH-BL-200")
        assert got == PRODUCT
        assert got is not None
        assert isinstance(got.props["warranty_months"], int)
        assert got.props["returnable"] is True
        assert got.props["name"]["zh"] == "Nimbus PowerBlend 200 破壁料理机"

    async def test_get_unknown_is_none(self, graph: GraphStore) -> None:
        assert await graph.get("Product", "nope") is None
        assert await graph.get("Nothing", "nope") is None

    async def test_upsert_merges_by_label_and_key_and_replaces_props(
            self, graph: GraphStore) -> None:
        await graph.upsert_nodes([PRODUCT])
        await graph.upsert_nodes([product("NH-BL-200", price=79.9)])
        assert await graph.get("Product", "NH-BL-200") == product("NH-BL-200", price=79.9)
        assert await graph.count("Product") == 1

    async def test_last_of_duplicates_in_a_batch_wins(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A", v=1), product("A", v=2)])
        assert await graph.get("Product", "A") == product("A", v=2)
        assert await graph.count() == 1

    async def test_same_key_under_two_labels_is_two_nodes(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("X1", v=1), Node("Order", "X1", {"v": 2})])
        assert (await graph.get("Order", "X1")) == Node("Order", "X1", {"v": 2})
        assert await graph.count() == 2

    async def test_none_props_are_not_stored(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A", gone=None, kept="yes")])
        assert await graph.get("Product", "A") == product("A", kept="yes")

    async def test_empty_batches_do_nothing(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([])
        await graph.upsert_edges([])
        assert await graph.count() == 0

    async def test_delete_node(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A"), product("B")])
        assert await graph.delete_node("Product", "A") is True
        assert await graph.delete_node("Product", "A") is False
        assert await graph.get("Product", "A") is None
        assert keys(await graph.find("Product")) == ["B"]

    async def test_count_per_label(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A"), product("B"), Node("Order", "O1", {})])
        assert await graph.count() == 3
        assert await graph.count("Product") == 2
        assert await graph.count("Order") == 1
        assert await graph.count("Customer") == 0

    # -- edges ---------------------------------------------------------------------------

    async def test_edges_need_both_ends_and_a_failed_batch_writes_nothing(
            self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A"), product("B")])
        good = Edge(("Product", "A"), "LINKS", ("Product", "B"))
        with pytest.raises(MissingEndpoint):
            await graph.upsert_edges([good, Edge(("Product", "A"), "LINKS", ("Product", "Z"))])
        with pytest.raises(MissingEndpoint):
            await graph.upsert_edges([Edge(("Order", "A"), "LINKS", ("Product", "B"))])
        assert await graph.neighbours("Product", "A") == []
        assert issubclass(MissingEndpoint, GraphError)

    async def test_edges_merge_by_src_rel_dst_and_replace_props(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([Node("Order", "O1", {}), product("A")])
        await graph.upsert_edges([Edge(("Order", "O1"), "CONTAINS", ("Product", "A"), {"qty": 1})])
        await graph.upsert_edges([Edge(("Order", "O1"), "CONTAINS", ("Product", "A"),
                                       {"qty": 3, "note": {"en": "gift", "zh": "礼物"}})])
        links = await graph.neighbours("Order", "O1")
        assert len(links) == 1
        edge, node = links[0]
        assert edge == Edge(("Order", "O1"), "CONTAINS", ("Product", "A"),
                            {"qty": 3, "note": {"en": "gift", "zh": "礼物"}})
        assert node == product("A")

    async def test_two_rel_types_between_the_same_nodes_are_two_edges(
            self, graph: GraphStore) -> None:
        await graph.upsert_nodes([product("A"), product("B")])
        await graph.upsert_edges([Edge(("Product", "A"), "LIKES", ("Product", "B")),
                                  Edge(("Product", "A"), "NEEDS", ("Product", "B"))])
        facts = await graph.facts("Product", "A")
        assert {fact.predicate for fact in facts} == {"likes", "needs"}

    async def test_delete_node_detaches_its_edges(self, graph: GraphStore) -> None:
        await chain(graph)
        assert await graph.delete_node("Thing", "B") is True
        assert reached(await graph.neighbours("Thing", "D")) == []
        assert reached(await graph.neighbours("Thing", "A")) == [("C", "A", "R", "C")]
        with pytest.raises(MissingEndpoint):
            await graph.upsert_edges([Edge(("Thing", "A"), "R", ("Thing", "B"))])

    async def test_delete_edge(self, graph: GraphStore) -> None:
        await chain(graph)
        assert await graph.delete_edge(("Thing", "B"), "S", ("Thing", "D")) is True
        assert await graph.delete_edge(("Thing", "B"), "S", ("Thing", "D")) is False
        assert await graph.delete_edge(("Thing", "D"), "S", ("Thing", "B")) is False
        assert reached(await graph.neighbours("Thing", "D")) == []
        assert await graph.get("Thing", "D") is not None

    # -- find ----------------------------------------------------------------------------

    async def test_find_by_property_equality(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([
            product("C", colour="red", size=2, ok=True, tags=["a", "b"], name={"en": "x"}),
            product("A", colour="red", size=1, ok=False, tags=["b"]),
            product("B", colour="blue", size=2.0, ok=True),
            Node("Order", "D", {"colour": "red"}),
        ])
        assert keys(await graph.find("Product", colour="red")) == ["A", "C"]
        assert keys(await graph.find("Product", colour="red", size=2)) == ["C"]
        assert keys(await graph.find("Product", size=2)) == ["B", "C"]
        assert keys(await graph.find("Product", ok=True)) == ["B", "C"]
        assert keys(await graph.find("Product", ok=False)) == ["A"]
        assert keys(await graph.find("Product", size=True)) == []
        assert keys(await graph.find("Product", tags=["a", "b"])) == ["C"]
        assert keys(await graph.find("Product", tags=["b", "a"])) == []
        assert keys(await graph.find("Product", name={"en": "x"})) == ["C"]
        assert keys(await graph.find("Product", tags=None)) == ["B"]
        assert keys(await graph.find("Product", colour="green")) == []
        assert keys(await graph.find("Product")) == ["A", "B", "C"]
        assert keys(await graph.find("Product", limit=2)) == ["A", "B"]
        assert keys(await graph.find("Customer")) == []
        found = await graph.find("Product", colour="blue")
        assert found == [product("B", colour="blue", size=2.0, ok=True)]

    # -- neighbours ----------------------------------------------------------------------

    async def test_neighbours_by_direction_and_rel(self, graph: GraphStore) -> None:
        await chain(graph)
        assert reached(await graph.neighbours("Thing", "B", direction="out")) == [
            ("C", "B", "R", "C"), ("D", "B", "S", "D")]
        assert reached(await graph.neighbours("Thing", "B", direction="in")) == [
            ("A", "A", "R", "B")]
        assert reached(await graph.neighbours("Thing", "B")) == [
            ("A", "A", "R", "B"), ("C", "B", "R", "C"), ("D", "B", "S", "D")]
        assert reached(await graph.neighbours("Thing", "B", rel="S")) == [("D", "B", "S", "D")]
        assert reached(await graph.neighbours("Thing", "B", rel="NONE")) == []
        assert await graph.neighbours("Thing", "E") == []
        assert await graph.neighbours("Thing", "missing") == []

    async def test_neighbours_give_each_node_once_by_its_nearest_edge(
            self, graph: GraphStore) -> None:
        await chain(graph)
        # C is both A's out-neighbour (A->C) and in-neighbour (C->A): once, smallest edge.
        assert reached(await graph.neighbours("Thing", "A")) == [
            ("B", "A", "R", "B"), ("C", "A", "R", "C")]
        edge, node = (await graph.neighbours("Thing", "D", direction="in"))[0]
        assert edge.props == {"weight": 2}
        assert node == Node("Thing", "B", {"name": "thing B"})

    async def test_neighbours_depth_2_and_3_without_duplicates_or_cycles(
            self, graph: GraphStore) -> None:
        await chain(graph)
        assert reached(await graph.neighbours("Thing", "A", direction="out", depth=2)) == [
            ("B", "A", "R", "B"), ("C", "A", "R", "C"), ("D", "B", "S", "D")]
        assert reached(await graph.neighbours("Thing", "B", direction="out", depth=2)) == [
            ("C", "B", "R", "C"), ("D", "B", "S", "D"), ("A", "C", "R", "A")]
        assert reached(await graph.neighbours("Thing", "B", direction="out", rel="R",
                                              depth=3)) == [
            ("C", "B", "R", "C"), ("A", "C", "R", "A")]
        assert reached(await graph.neighbours("Thing", "D", direction="in", depth=3)) == [
            ("B", "B", "S", "D"), ("A", "A", "R", "B"), ("C", "C", "R", "A")]
        both = reached(await graph.neighbours("Thing", "D", depth=3))
        assert [key for key, *_ in both] == ["B", "A", "C"]
        assert both[0] == ("B", "B", "S", "D")

    async def test_depth_must_be_1_to_3(self, graph: GraphStore) -> None:
        await chain(graph)
        for depth in (0, 4, -1):
            with pytest.raises(InvalidGraphValue):
                await graph.neighbours("Thing", "A", depth=depth)
        with pytest.raises(InvalidGraphValue):
            await graph.neighbours("Thing", "A", direction="sideways")  # type: ignore[arg-type]

    # -- facts ---------------------------------------------------------------------------

    async def test_facts_in_en_and_zh_name_the_neighbours(self, graph: GraphStore) -> None:
        await graph.upsert_nodes([
            PRODUCT,
            Node("Policy", "warranty", {"title": {"en": "Warranty", "zh": "保修政策"}}),
            Node("Category", "kitchen", {"name": "Kitchen appliances"}),
            Node("Order", "PL-1", {"status": "shipped"}),
        ])
        await graph.upsert_edges([
            Edge(("Product", "NH-BL-200"), "COVERED_BY", ("Policy", "warranty")),
            Edge(("Product", "NH-BL-200"), "IN_CATEGORY", ("Category", "kitchen")),
            Edge(("Order", "PL-1"), "CONTAINS", ("Product", "NH-BL-200"), {"qty": 2}),
        ])
        en = await graph.facts("Product", "NH-BL-200")
        name = "Nimbus PowerBlend 200 Blender"
        own = "graph:Product:NH-BL-200"
        assert Fact(own, name, "warranty_months", "24") in en
        assert Fact(own, name, "returnable", "true") in en
        assert Fact(own, name, "aliases", "blender, 破壁机") in en
        assert Fact(own, name, "name", name) in en
        triples = [(fact.subject, fact.predicate, fact.object) for fact in en]
        assert (name, "covered by", "Warranty") in triples
        assert (name, "in category", "Kitchen appliances") in triples
        assert ("PL-1", "contains", f"{name} (qty: 2)") in triples
        assert len(en) == len(PRODUCT.props) + 3
        assert len({fact.source_id for fact in en}) == 4

        zh = await graph.facts("Product", "NH-BL-200", lang="zh")
        zh_name = "Nimbus PowerBlend 200 破壁料理机"
        assert Fact(own, zh_name, "name", zh_name) in zh
        triples = [(fact.subject, fact.predicate, fact.object) for fact in zh]
        assert (zh_name, "covered by", "保修政策") in triples
        assert (zh_name, "in category", "Kitchen appliances") in triples  # str: any lang
        # A language the dict does not have falls back to English.
        de = await graph.facts("Product", "NH-BL-200", lang="de")
        assert Fact(own, name, "name", name) in de

    async def test_facts_of_an_unknown_node_are_empty(self, graph: GraphStore) -> None:
        assert await graph.facts("Product", "nope") == []

    async def test_facts_list_every_edge_even_two_to_one_neighbour(
            self, graph: GraphStore) -> None:
        await chain(graph)
        facts = [(f.subject, f.predicate, f.object) for f in await graph.facts("Thing", "A")]
        assert facts == [("thing A", "name", "thing A"), ("thing A", "r", "thing B"),
                         ("thing A", "r", "thing C"), ("thing C", "r", "thing A")]

    # -- names and values ----------------------------------------------------------------

    @pytest.mark.parametrize("label", BAD_LABELS)
    async def test_bad_labels_are_refused_before_the_database(
            self, graph: GraphStore, label: str) -> None:
        await graph.upsert_nodes([product("A"), product("B")])
        calls = [
            graph.upsert_nodes([Node(label, "A", {})]),
            graph.upsert_edges([Edge((label, "A"), "R", ("Product", "B"))]),
            graph.upsert_edges([Edge(("Product", "A"), "R", (label, "B"))]),
            graph.delete_node(label, "A"),
            graph.delete_edge((label, "A"), "R", ("Product", "B")),
            graph.get(label, "A"),
            graph.find(label),
            graph.neighbours(label, "A"),
            graph.facts(label, "A"),
            graph.count(label),
        ]
        for call in calls:
            with pytest.raises(InvalidGraphName):
                await call
        assert await graph.count() == 2
        assert issubclass(InvalidGraphName, GraphError)

    @pytest.mark.parametrize("rel", BAD_RELS)
    async def test_bad_relationship_types_are_refused(self, graph: GraphStore, rel: str) -> None:
        await graph.upsert_nodes([product("A"), product("B")])
        with pytest.raises(InvalidGraphName):
            await graph.upsert_edges([Edge(("Product", "A"), rel, ("Product", "B"))])
        with pytest.raises(InvalidGraphName):
            await graph.delete_edge(("Product", "A"), rel, ("Product", "B"))
        with pytest.raises(InvalidGraphName):
            await graph.neighbours("Product", "A", rel=rel)
        assert await graph.count() == 2
        assert await graph.neighbours("Product", "A") == []

    async def test_reserved_and_bad_property_names_are_refused(self, graph: GraphStore) -> None:
        for props in ({"key": "x"}, {"_json": ["x"]}, {"": 1}):
            with pytest.raises(InvalidGraphName):
                await graph.upsert_nodes([Node("Product", "A", props)])
        with pytest.raises(InvalidGraphName):
            await graph.find("Product", key="A")
        assert await graph.count() == 0

    async def test_unstorable_values_are_refused(self, graph: GraphStore) -> None:
        for value in ([[1]], [1, "a"], [None], {1, 2}, object(), float("nan"), [{"a": 1}],
                      2**64):
            with pytest.raises(InvalidGraphValue):
                await graph.upsert_nodes([product("A", bad=value)])
        assert await graph.count() == 0

    async def test_values_with_quotes_and_cypher_are_stored_literally(
            self, graph: GraphStore) -> None:
        nodes = [product(text, text=text, texts=[text, "plain"], i18n={"en": text, "zh": text})
                 for text in NASTY]
        await graph.upsert_nodes(nodes)
        await graph.upsert_edges([Edge(("Product", NASTY[0]), "LINKS", ("Product", text),
                                       {"why": text}) for text in NASTY[1:]])
        assert await graph.count() == len(NASTY)
        for node in nodes:
            assert await graph.get("Product", node.key) == node
            assert keys(await graph.find("Product", text=node.key)) == [node.key]
        links = await graph.neighbours("Product", NASTY[0], direction="out")
        assert sorted(node.key for _, node in links) == sorted(NASTY[1:])
        assert all(edge.props["why"] == node.key for edge, node in links)
        assert await graph.delete_node("Product", NASTY[3]) is True
        assert await graph.count() == len(NASTY) - 1

    # -- the demo company ----------------------------------------------------------------

    async def test_load_company_twice_gives_the_same_graph(self, graph: GraphStore) -> None:
        first = await load_company(graph, COMPANY)
        total = await graph.count()
        second = await load_company(graph, COMPANY)
        assert first == second
        assert total == await graph.count()
        for label in ("Product", "Customer", "Order", "Policy", "Category"):
            assert first[label] == await graph.count(label) > 0
        assert total == sum(first[label] for label in
                            ("Product", "Customer", "Order", "Policy", "Category"))
        assert first["COVERED_BY"] == 2 * first["Product"]
        assert first["IN_CATEGORY"] == first["Product"]
        assert first["PLACED"] == first["Order"]

    async def test_company_facts_for_a_product(self, graph: GraphStore) -> None:
        await load_company(graph, COMPANY)
        facts = await graph.facts("Product", "NH-BL-200")
        name = "Nimbus PowerBlend 200 Blender"
        triples = {(fact.subject, fact.predicate, fact.object) for fact in facts}
        assert (name, "warranty_months", "24") in triples
        assert (name, "in category", "Kitchen appliances") in triples
        assert (name, "covered by", "Warranty") in triples
        assert (name, "covered by", "Returns") in triples
        assert ("PL-204817", "contains", f"{name} (qty: 1)") in triples
        zh = {(fact.predicate, fact.object) for fact in
              await graph.facts("Product", "NH-BL-200", lang="zh")}
        assert ("covered by", "保修政策") in zh

    async def test_company_graph_links_customers_orders_products(
            self, graph: GraphStore) -> None:
        await load_company(graph, COMPANY)
        customer = await graph.get("Customer", "C-1001")
        assert customer is not None
        assert set(customer.props) == {"name", "language", "email"}
        assert keys(await graph.find("Customer", email="li.wei@example.com")) == ["C-1002"]
        order = await graph.get("Order", "PL-204817")
        assert order is not None and order.props["status"] == "shipped"
        products = await graph.neighbours("Customer", "C-1001", direction="out", depth=2)
        assert ("Product", "NH-BL-200") in [node.ref for _, node in products]
        contains = await graph.neighbours("Order", "PL-204817", rel="CONTAINS")
        assert [(edge.props, node.key) for edge, node in contains] == [
            ({"qty": 1}, "NH-BL-200")]
        buyers = await graph.neighbours("Product", "NH-BL-200", rel="CONTAINS",
                                        direction="in")
        assert "PL-204817" in keys([node for _, node in buyers])
