"""``snnbench sim die new | info | reset | use``: the default station's persistent simulated chip.

The built-in simulated bench keeps its chip in a die file (``bench.dies``: the per-user die
home, ``$SNNBENCH_DIE_HOME`` or the cache directory), so successive commands talk to the same
chip.  ``new`` makes a fresh die the current one, ``reset`` returns the current die to its
as-fabricated state (same seed), ``use FILE`` switches to another die file (``use default``
back to the home's own), ``info`` tells which die it is, its seed, age and wear.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench import dies
from bench.commands._args import int_range
from bench.commands._groups import group
from bench.errors import UsageError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sim = group(subparsers, "sim", "the simulated bench")
    die = group(sim, "die", "the default station's simulated die (persistent chip state)")
    p = die.add_parser("new", parents=[common], help="make a fresh die the current die")
    p.add_argument("--seed", type=int_range(0, 2 ** 63 - 1), default=1, help="chip seed (device-to-device map)")
    p.add_argument("--run-seed", type=int_range(0, 2 ** 63 - 1), default=0, help="run seed (noise stream)")
    p.add_argument("--fidelity", choices=["ideal", "typical", "worst"], default="typical")
    p.add_argument("--out", metavar="FILE", help="die file to create (default: replace the current die)")
    p.add_argument("--force", action="store_true", help="with --out: replace an existing file")
    p.set_defaults(func=_new)
    p = die.add_parser("info", parents=[common], help="which die the default station uses, its seed, age, wear")
    p.add_argument("file", nargs="?", help="a die file (default: the current die)")
    p.set_defaults(func=_info)
    p = die.add_parser("reset", parents=[common], help="return the current die to its as-fabricated state")
    p.set_defaults(func=_reset)
    p = die.add_parser("use", parents=[common], help="make FILE the current die ('default': the home's own)")
    p.add_argument("file", help="an existing die file, or 'default'")
    p.set_defaults(func=_use)


def _summary(info: dict, verb: str) -> dict:
    age = info.get("age_since_programming_s")
    age_txt = "never programmed" if age is None else f"programmed {age:.3g} s ago"
    info["summary"] = (f"{verb} {info['file']}: seed {info['seed']}, {info['fidelity']}, {age_txt}, "
                       f"{info['total_pulses']} pulses, {info['stuck_cells']} stuck cells")
    return info


def _new(args: argparse.Namespace) -> dict:
    from sim_backend.die import create_die

    if args.out:
        path = Path(args.out)
        if not path.parent.is_dir():
            raise UsageError(f"--out {args.out}: directory {path.parent} does not exist")
        info = create_die(path, args.seed, args.fidelity, args.run_seed, overwrite=args.force)
        dies.use_die(path)
    else:
        info = create_die(dies.prepare_current_die(), args.seed, args.fidelity, args.run_seed, overwrite=True)
    info["current"] = True
    return _summary(info, "new die")


def _info(args: argparse.Namespace) -> dict:
    from sim_backend.die import die_info

    path = Path(args.file) if args.file else dies.current_die()
    current = path.expanduser().resolve() == dies.current_die().expanduser().resolve()
    if not path.exists():
        if args.file:
            raise UsageError(f"{args.file}: no such die file")
        return {"file": str(path), "exists": False, "current": True, "home": str(dies.die_home()),
                "summary": f"no die yet at {path}: the default station makes a fresh one on first use"}
    info = die_info(path)
    info.update(exists=True, current=current, home=str(dies.die_home()))
    return _summary(info, "current die" if current else "die")


def _reset(args: argparse.Namespace) -> dict:
    from sim_backend.die import create_die, reset_die

    path = dies.prepare_current_die()
    info = reset_die(path) if path.exists() else create_die(path)
    return _summary(info, "reset die")


def _use(args: argparse.Namespace) -> dict:
    from sim_backend.die import die_info

    if args.file == "default":
        path = dies.use_die(None)
        if not path.exists():
            return {"file": str(path), "exists": False, "current": True,
                    "summary": f"current die: {path} (made on first use)"}
        return _summary(dict(die_info(path), current=True), "current die")
    info = die_info(args.file)          # refuses a file that is not a die (exit 2)
    dies.use_die(args.file)
    return _summary(dict(info, current=True), "current die")
