"""The baseline for the API benchmark: the least a FastAPI + SQLite service can do per request.

POST /items inserts one row (WAL, synchronous=FULL like the service); GET /items/{id} reads one.
"""

from __future__ import annotations

import os
import sqlite3
import uuid

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DB = os.environ.get("MINIMAL_DB", "minimal.db")
app = FastAPI()


class Item(BaseModel):
    circuit: str
    shots: int = 1024


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB, timeout=5, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@app.on_event("startup")
def _schema() -> None:
    conn = _connect()
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, circuit TEXT, shots INTEGER)")
    conn.close()


@app.post("/items", status_code=202)
def create(item: Item) -> dict[str, str]:
    item_id = str(uuid.uuid4())
    conn = _connect()
    try:
        conn.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, item.circuit, item.shots))
    finally:
        conn.close()
    return {"id": item_id}


@app.get("/items/{item_id}")
def read(item_id: str) -> dict[str, object]:
    conn = _connect()
    try:
        row = conn.execute("SELECT id, circuit, shots FROM items WHERE id = ?", (item_id,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise HTTPException(404)
    return {"id": row[0], "circuit": row[1], "shots": row[2]}
