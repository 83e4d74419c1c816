"""``snnbench conformance``: a board checked against docs/protocol.md, section by section.

Modules (one per spec section) register their checks on import; :data:`SECTIONS` is the
order the suite runs them in.
"""
from __future__ import annotations

from bench.conformance import busy, framing, link, opcodes, session, status_record, write_verify  # noqa: F401
from bench.conformance import bounded  # noqa: F401  (after the opcodes of protocol 2's core)
from bench.conformance.core import CHECKS, SUITE_VERSION, Check, Context, Outcome, Sandbox, run, select

SECTIONS = sorted({c.section for c in CHECKS}, key=lambda s: [c.section for c in CHECKS].index(s))

__all__ = ["CHECKS", "SECTIONS", "SUITE_VERSION", "Check", "Context", "Outcome", "Sandbox", "run", "select"]
