"""The embedded company store: the demo company's orders and customers, from YAML into SQLite.

The SQLite file is rebuilt whenever the YAML changes (content hash), so edits to
a project's ``company/*.yml`` show up on the next start without a migration step. An order's items
carry the product names ``products.yml`` gives them; finding a product by name is the
graph's job (``knowledge.products``), which the entity editor keeps.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import yaml

from knowledge.protocol import Order, OrderItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""
FILES = ("products.yml", "customers.yml", "orders.yml")
TABLES = {"products": ("products.yml", "sku"), "customers": ("customers.yml", "id"),
          "orders": ("orders.yml", "id")}


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

        def load(name: str) -> list[dict[str, Any]]:
            path = self.source / name
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
            # Either a bare list, or {<file stem>: [...]}.
            items = doc.get(name.removesuffix(".yml"), []) if isinstance(doc, dict) else doc
            return list(items or [])

        with self._lock, self._conn:
            for table, (name, key) in TABLES.items():
                self._conn.execute(f"DELETE FROM {table}")  # a name from TABLES
                for item in load(name):
                    self._conn.execute(f"INSERT INTO {table} VALUES (?, ?)",
                                       (str(item[key]), json.dumps(item, ensure_ascii=False,
                                                                   default=str)))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('source_hash', ?)", (digest,))

    def _doc(self, table: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(f"SELECT doc FROM {table} WHERE "  # a name from TABLES
                                     f"{TABLES[table][1]} = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_order(self, order_id: str) -> Order | None:
        doc = self._doc("orders", order_id.strip().upper())
        if doc is None:
            return None
        customer = self._doc("customers", str(doc.get("customer"))) or {}
        items = []
        for item in doc.get("items", []):
            product = self._doc("products", item["sku"]) or {}
            items.append(OrderItem(sku=item["sku"], name=product.get("name", {"en": item["sku"]}),
                                   qty=int(item.get("qty", 1))))
        return Order(
            id=doc["id"], status=doc["status"], placed_on=str(doc.get("placed_on", "")),
            items=tuple(items), total=float(doc.get("total", 0)),
            customer_email=customer.get("email", ""), carrier=doc.get("carrier"),
            tracking=doc.get("tracking"), eta=_opt(doc.get("eta")),
            delivered_on=_opt(doc.get("delivered_on")), refund=doc.get("refund"))


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
