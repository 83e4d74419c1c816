"""Argument types and options shared by the command modules (one definition each)."""
from __future__ import annotations

import argparse
import math

# Copies of library constants the parsers need, so that registering every command (``--help``,
# a usage error) does not import the driver, the programming flow or h5py; each is checked
# equal to its source by tests/test_cli_startup.py.
MAX_WAIT_S = 1e7
"""= drivers.pechip.MAX_WAIT_S: the longest chip-time WAIT the board accepts (s)."""
PROGRAM_MODES = ("host", "board")
"""= bench.programming.MODES: where write-verify runs."""


def pos_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int(text, 1)


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int(text, 0)


def _int(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
    return v


def int_range(low: int, high: int, why: str = ""):
    """argparse type factory: an integer in [low, high]; ``why`` says where the bound comes from."""
    reason = f" ({why})" if why else ""

    def parse(text: str) -> int:
        v = _int(text, low)
        if v > high:
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high}{reason}, got {v}")
        return v

    return parse


def float_range(low: float, high: float, why: str = ""):
    """argparse type factory: a finite number in [low, high]; ``why`` says where the bound comes from."""
    reason = f" ({why})" if why else ""

    def parse(text: str) -> float:
        v = _float(text)
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"expected a number in {low:g}..{high:g}{reason}, got {text!r}")
        return v

    return parse


# Upper bounds shared by several commands, each with the reason a person reads in the error.
MAX_SEED = 2**63 - 1
seed_int = int_range(0, MAX_SEED, "stored as a signed 64-bit integer in run files")
MAX_SAMPLES = 1_000_000
sample_limit = int_range(1, MAX_SAMPLES, "more samples than any data split holds; "
                                         "the DVS128 Gesture test split has 288")
MAX_BATCH = 4096
batch_size = int_range(1, MAX_BATCH, "one batch of 300-step samples is held in memory at once")


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def pos_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def add_chip_argument(p: argparse.ArgumentParser) -> None:
    """``--chip URL``: the board's pyserial URL, overriding the station's."""
    p.add_argument("--chip", metavar="URL",
                   help="pyserial URL of the board (/dev/ttyUSB0, socket://host:port, pesim://?seed=1); "
                        "default: the station's, i.e. the built-in simulated bench")
