"""``snnbench sim serve``: run the simulated bench (virtual chip + instruments) as a server."""
from __future__ import annotations

import argparse

from bench.commands._groups import group


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sim = group(subparsers, "sim", "the simulated bench")
    p = sim.add_parser("serve", parents=[common],
                       help="serve the virtual chip (socket:// or pty) and virtual SMUs until SIGINT/SIGTERM")
    p.set_defaults(func=_serve)
    if hasattr(p, "defer"):   # bench.cli's parser: the simulator is imported only when serving
        p.defer(_serve_arguments)
    else:
        _serve_arguments(p)


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    from sim_backend.server import add_serve_arguments

    add_serve_arguments(p)


def _serve(args: argparse.Namespace) -> dict:
    from sim_backend.server import run_serve

    from bench.cli import SILENT

    run_serve(args)  # its first stdout line is the JSON object naming what is served
    return SILENT
