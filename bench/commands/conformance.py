"""``snnbench conformance``: check a board against docs/protocol.md (protocol v2).

    snnbench conformance --chip URL [--only SECTION ...] [--yes] [--list] [--junit FILE] [--json]

Every check runs on a fresh link against a freshly reset board and prints the spec section
and the requirement it verifies; exit 1 when any check fails or errors.  The suite only uses
the sandbox rows and voltages inside the station's limits, and says what it will touch
before it starts (``--yes`` skips the question).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from bench.commands._args import add_chip_argument, pos_float
from bench.errors import UsageError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("conformance", parents=[common],
                              help="check a board against the protocol specification (docs/protocol.md)")
    add_chip_argument(p)
    p.add_argument("--only", action="append", metavar="SECTION",
                   help="run only this section or check id (prefix: op = every op.*); repeatable")
    p.add_argument("--yes", action="store_true", help="do not ask before touching the board")
    p.add_argument("--list", action="store_true", help="list the checks without running them")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    p.add_argument("--rows", default="120:128", metavar="A:B",
                   help="sandbox rows the suite may pulse and program (all columns), default 120:128")
    p.add_argument("--timeout-s", type=pos_float, default=2.0, help="reply deadline of short commands (s)")
    p.set_defaults(func=_conformance)


def _rows(text: str, rows: int = 128) -> range:
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"--rows {text!r}: expected A:B, e.g. 120:128") from None
    if not 0 <= a < b <= rows or b - a < 4:
        raise UsageError(f"--rows {text}: need 0 <= A < B <= {rows} and at least 4 rows")
    return range(a, b)


def _confirm(touches: str, url: str) -> None:
    print(f"snnbench conformance will use the board at {url}: {touches}.", file=sys.stderr)
    if not sys.stdin.isatty():
        raise UsageError("conformance changes the board's state; confirm with --yes (stdin is not a terminal)")
    print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was sent")


def _conformance(args: argparse.Namespace) -> dict:
    from bench import conformance as C
    from bench.conformance import report
    from bench.session import register_sim_urls
    from bench.station import load_station
    from firmware_iface.framing import PROTOCOL_VERSION

    chosen = C.select(args.only)
    if args.only and not chosen:
        raise UsageError(f"--only {', '.join(args.only)}: no such section or check "
                         f"(sections: {', '.join(C.SECTIONS)})")
    if args.list:
        checks = [{"id": c.id, "section": c.section, "level": c.level, "requirement": c.requirement}
                  for c in chosen]
        return {"summary": "\n".join(f"{c['id']:<18} {c['requirement']}" for c in checks),
                "checks": checks, "sections": {s: sum(c.section == s for c in chosen) for s in C.SECTIONS}}
    if args.junit and not Path(args.junit).resolve().parent.is_dir():
        raise UsageError(f"--junit {args.junit}: directory {Path(args.junit).resolve().parent} does not exist")
    station = load_station(args.station)
    sandbox = C.Sandbox.for_limits(station.limits, _rows(args.rows))
    register_sim_urls()
    url = args.chip or station.chip.url
    with contextlib.ExitStack() as stack:
        if url == "sim":
            from bench.simbench import SimBench

            sim = stack.enter_context(SimBench(seed=station.chip.seed, run_seed=station.chip.run_seed,
                                               fidelity=station.chip.fidelity, instruments=False))
            url = sim.chip_url
        if not args.yes:
            _confirm(sandbox.describe(), url)
        board = _identify(url, args.timeout_s)
        t0 = time.monotonic()
        outcomes = list(C.run(chosen, lambda: C.Context(url, station.limits, sandbox, args.timeout_s)))
        wall = time.monotonic() - t0
    c = report.counts(outcomes)
    failed = c["fail"] + c["error"]
    result = {
        "summary": report.table(outcomes) + f"\n{wall:.1f} s against {url}",
        "suite_version": C.SUITE_VERSION, "protocol_version": PROTOCOL_VERSION, "url": url, "board": board,
        "touches": sandbox.describe(), "counts": c, "sections": report.sections(outcomes),
        "checks": [o.as_dict() for o in outcomes], "duration_s": round(wall, 3),
        "exit_code": 1 if failed else 0,
    }
    if args.junit:
        report.write_junit(Path(args.junit), outcomes, "snnbench conformance",
                           {"url": url, "suite_version": C.SUITE_VERSION, "protocol_version": str(PROTOCOL_VERSION),
                            "firmware": board.get("firmware_version", "?")})
    return result


def _identify(url: str, timeout_s: float) -> dict:
    """HELLO + GET_INFO on a raw link: who is on the far side.  A board that cannot even
    answer these is still checked (every check then reports what fails)."""
    from bench.conformance.rawlink import NoReply, RawLink
    from firmware_iface import messages as msg
    from firmware_iface.records import PayloadError
    from firmware_iface.spec import Opcode

    link = RawLink(url, timeout_s)
    try:
        hello = msg.decode_hello(link.open_session().payload)
        info = msg.decode_info(link.ok(Opcode.GET_INFO)).as_dict()
        return {"firmware_version": hello.firmware_version, "protocol_version": hello.protocol_version,
                "chip_id": info["chip_id"], "rows": info["rows"], "columns": info["columns"],
                "capabilities": info["capabilities"], "max_payload": hello.max_payload,
                "max_frame": hello.max_frame, "v_max_v": hello.v_max_v, "width_max_s": hello.width_max_s}
    except (NoReply, AssertionError, PayloadError) as exc:
        return {"error": f"HELLO / GET_INFO failed: {exc}"}
    finally:
        link.close()
