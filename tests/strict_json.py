"""Strict JSON for every command's ``--json`` test: exactly one object, no NaN / Infinity.

Python's ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` although they are not
JSON (RFC 8259); ``parse_constant`` is only called for those three, so raising there makes the
parse strict.
"""
from __future__ import annotations

import json
from typing import Any


def _reject(token: str) -> Any:
    raise ValueError(f"not strict JSON: {token} in --json output")


def loads_strict(text: str) -> dict[str, Any]:
    """Parse a command's stdout: exactly one JSON object, strict (no NaN / Infinity)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got {len(lines)}: {text[:200]!r}"
    obj = json.loads(lines[0], parse_constant=_reject)
    assert isinstance(obj, dict), f"--json must print an object, got {type(obj).__name__}"
    return obj
