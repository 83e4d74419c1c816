"""Shared command groups (``snnbench chip ...``, ``snnbench sim ...``, ``snnbench model ...``).

Several command modules add subcommands to one group; :func:`group` creates the group
parser once and returns its subparsers action.
"""
from __future__ import annotations

import argparse


def group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The subparsers action of group ``name`` (created on first use)."""
    cache = subparsers.__dict__.setdefault("_snnbench_groups", {})
    if name not in cache:
        parser = subparsers.add_parser(name, help=help)
        cache[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND",
                                            parser_class=type(parser))
        parser.set_defaults(func=lambda args, p=parser: _missing(p))
    return cache[name]


def _missing(parser: argparse.ArgumentParser) -> dict:
    parser.error("a subcommand is required")
    return {}
