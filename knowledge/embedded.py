"""The embedded company store: the demo company's YAML loaded into a SQLite file.

The SQLite file is rebuilt whenever the YAML changes (content hash), so edits to
``data/company/*.yml`` show up on the next start without a migration step.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import yaml

from knowledge.protocol import Order, OrderItem, Policy, Product

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS product_aliases (alias TEXT PRIMARY KEY, sku TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""
FILES = ("products.yml", "customers.yml", "orders.yml", "policies.yml")


def _source_hash(source: Path) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        path = source / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


class SQLiteCompanyStore:
    def __init__(self, source: Path, database: Path) -> None:
        self.source = Path(source)
        self.database = Path(database)
        self._lock = threading.Lock()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.database, check_same_thread=False)
        self._conn.executescript(SCHEMA)
        self._sync()

    def _sync(self) -> None:
        digest = _source_hash(self.source)
        row = self._conn.execute("SELECT value FROM meta WHERE key='source_hash'").fetchone()
        if row and row[0] == digest:
            return
        def load(name: str) -> list[dict]:
            doc = yaml.safe_load((self.source / name).read_text(encoding="utf-8")) or []
            # Either a bare list, or {<file stem>: [...]}.
            return doc.get(name.removesuffix(".yml"), []) if isinstance(doc, dict) else doc

        with self._lock, self._conn:
            for table in ("products", "product_aliases", "customers", "orders", "policies"):
                self._conn.execute(f"DELETE FROM {table}")
            for product in load("products.yml"):
                self._conn.execute("INSERT INTO products VALUES (?, ?)",
                                   (product["sku"], json.dumps(product, ensure_ascii=False)))
                names = [*product.get("aliases", []), *product.get("name", {}).values()]
                for alias in names:
                    self._conn.execute("INSERT OR IGNORE INTO product_aliases VALUES (?, ?)",
                                       (str(alias).lower(), product["sku"]))
            for table, name in (("customers", "customers.yml"), ("orders", "orders.yml"),
                                ("policies", "policies.yml")):
                for item in load(name):
                    self._conn.execute(f"INSERT INTO {table} VALUES (?, ?)",
                                       (str(item["id"]), json.dumps(item, ensure_ascii=False,
                                                                    default=str)))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('source_hash', ?)", (digest,))

    def _doc(self, table: str, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute(f"SELECT doc FROM {table} WHERE id = ?",
                                     (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _product_doc(self, sku: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT doc FROM products WHERE sku = ?", (sku,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_order(self, order_id: str) -> Order | None:
        doc = self._doc("orders", order_id.strip().upper())
        if doc is None:
            return None
        customer = self._doc("customers", str(doc.get("customer"))) or {}
        items = []
        for item in doc.get("items", []):
            product = self._product_doc(item["sku"]) or {}
            items.append(OrderItem(sku=item["sku"], name=product.get("name", {"en": item["sku"]}),
                                   qty=int(item.get("qty", 1))))
        return Order(
            id=doc["id"], status=doc["status"], placed_on=str(doc.get("placed_on", "")),
            items=tuple(items), total=float(doc.get("total", 0)),
            customer_email=customer.get("email", ""), carrier=doc.get("carrier"),
            tracking=doc.get("tracking"), eta=_opt(doc.get("eta")),
            delivered_on=_opt(doc.get("delivered_on")), refund=doc.get("refund"))

    def get_policy(self, policy_id: str) -> Policy | None:
        doc = self._doc("policies", policy_id)
        return Policy(id=doc["id"], title=doc["title"], text=doc["text"]) if doc else None

    def find_product(self, name: str) -> Product | None:
        with self._lock:
            row = self._conn.execute("SELECT sku FROM product_aliases WHERE alias = ?",
                                     (name.strip().lower(),)).fetchone()
        doc = self._product_doc(row[0]) if row else None
        if doc is None:
            return None
        return Product(sku=doc["sku"], name=doc["name"], description=doc.get("description", {}),
                       price=float(doc.get("price", 0)),
                       warranty_months=int(doc.get("warranty_months", 24)),
                       returnable=bool(doc.get("returnable", True)),
                       aliases=tuple(doc.get("aliases", [])))


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
