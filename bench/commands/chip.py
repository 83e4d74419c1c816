"""``snnbench chip info``: identity and limits of the chip behind the link, and for a simulated
chip which die it is (file, seed, age since programming, total pulses), or that it is a fresh
die that is not persisted."""
from __future__ import annotations

import argparse

from bench.commands._args import add_chip_argument
from bench.commands._groups import group


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    chip = group(subparsers, "chip", "the PE-macro chip: info, program, read")
    p = chip.add_parser("info", parents=[common], help="chip identity, geometry and limits")
    add_chip_argument(p)
    p.set_defaults(func=_info)
    register_reg(chip, common)


def _info(args: argparse.Namespace) -> dict:
    from bench import session

    with session.open_bench(args.station, args.chip) as b:
        info = b.chip.info()
        b.chip.ping(b"snnbench")
        out = info.as_dict()
        out["url"] = b.chip_url
        out["simulated"] = b.simulated
        out["round_trips"] = b.chip.stats.round_trips
        out["station"] = b.station.source
        out["station_limits"] = dict(vars(b.station.limits))
        if b.simulated:
            out["die"] = die_of(b.chip)
    return out


def die_of(chip) -> dict | None:
    """The simulator's report of its die (None if the board cannot say)."""
    from drivers.errors import ChipError

    try:
        die = chip.sim_query("die")
    except ChipError:
        return None
    if isinstance(die, dict) and die.get("persisted") is False:
        die.setdefault("summary", "fresh die (not persisted)")
    return die


def register_reg(chip_group: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = chip_group.add_parser("reg", parents=[common], help="read or write a bias/DAC register (SI units)")
    add_chip_argument(p)
    p.add_argument("name", help="register name, e.g. V_READ, TIME_STEP, THRESHOLD")
    p.add_argument("value", nargs="?", help="new value in SI units (V, s, S, steps); omit to read")
    p.set_defaults(func=_reg)


def _reg(args: argparse.Namespace) -> dict:
    from firmware_iface.spec import REGISTER_BY_NAME

    from bench import session
    from bench.errors import UsageError

    name = args.name.upper()
    if name not in REGISTER_BY_NAME:
        raise UsageError(f"unknown register {args.name!r} (known: {', '.join(REGISTER_BY_NAME)})")
    value = None
    if args.value is not None:
        try:
            value = float(args.value)
        except ValueError:
            raise UsageError(f"register {name} value {args.value!r} is not a number") from None
        reg = REGISTER_BY_NAME[name]
        code = reg.to_code(value) if value == value and abs(value) != float("inf") else None
        if not reg.writable:
            raise UsageError(f"register {name} is read-only")
        if code is None or not reg.min_code <= code <= reg.max_code:
            raise UsageError(f"register {name} value {args.value} {reg.unit} is outside "
                             f"[{reg.to_si(reg.min_code):g}, {reg.to_si(reg.max_code):g}] {reg.unit}")
    with session.open_bench(args.station, args.chip) as b:
        if value is not None:
            b.chip.write_register(name, value)
        return {"register": name, "value": b.chip.read_register(name),
                "unit": REGISTER_BY_NAME[name].unit}
