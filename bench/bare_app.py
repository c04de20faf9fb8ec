"""The benchmark's baseline: a bare Flask endpoint that parses JSON and returns it."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask("bench-bare")


@app.post("/event")
def echo() -> Any:
    return request.get_json()
