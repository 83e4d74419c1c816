"""``snnbench conformance``: a board checked against docs/protocol.md, section by section.

Modules (one per spec section) register their checks on import; :data:`SECTIONS` is the
order the suite runs them in.
"""
from __future__ import annotations

# import order = run order: frame layer first, then sessions, jobs, opcodes, the algorithm
from bench.conformance import (framing, link, session, busy, opcodes, bounded, bulkmode,  # noqa: F401
                               write_verify, status_record)
from bench.conformance.core import CHECKS, SUITE_VERSION, Check, Context, Outcome, Sandbox, run, select

SECTIONS = sorted({c.section for c in CHECKS}, key=lambda s: [c.section for c in CHECKS].index(s))

__all__ = ["CHECKS", "SECTIONS", "SUITE_VERSION", "Check", "Context", "Outcome", "Sandbox", "run", "select"]
