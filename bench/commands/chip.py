"""``snnbench chip info``: identity and limits of the chip behind the link."""
from __future__ import annotations

import argparse

from bench.commands._groups import group
from bench.session import open_bench


def add_chip_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chip", metavar="URL",
                   help="pyserial URL of the board (/dev/ttyUSB0, socket://host:port, pesim://?seed=1); "
                        "default: the station's, i.e. the built-in simulated bench")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    chip = group(subparsers, "chip", "the PE-macro chip: info, program, read")
    p = chip.add_parser("info", parents=[common], help="chip identity, geometry and limits")
    add_chip_argument(p)
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> dict:
    with open_bench(args.station, args.chip) as b:
        info = b.chip.info()
        b.chip.ping(b"snnbench")
        out = info.as_dict()
        out["url"] = b.chip_url
        out["simulated"] = b.simulated
        out["round_trips"] = b.chip.stats.round_trips
    return out
