"""Prediction records as JSON lines or CSV rows."""

from __future__ import annotations

import json
from typing import Any


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One level of columns: probabilities become ``p_<label>``, vector predictions ``prediction_<i>``."""
    flat: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            flat.update({f"p_{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, list):
            flat.update({(f"{k}_{i}" if len(v) > 1 else k): vv for i, vv in enumerate(v)})
        else:
            flat[k] = v
    return flat


def csv_header(record: dict[str, Any]) -> str:
    return ",".join(flatten(record)) + "\n"


def csv_row(record: dict[str, Any]) -> str:
    return ",".join(str(v) for v in flatten(record).values()) + "\n"


def jsonl_row(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


def render(records: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(jsonl_row(r) for r in records)
    if not records:
        return ""
    return csv_header(records[0]) + "".join(csv_row(r) for r in records)
