"""``sim serve``: the simulated bench as a separate process, reached only through real
transports — TCP for pyserial's ``socket://`` handler, or a pseudo-terminal — plus the
instrument simulators (SCPI over TCP on 127.0.0.1) that share the chip's world.

The first line on stdout is one JSON object naming what is served, e.g.
``{"chip": "socket://127.0.0.1:40123", "smu": [...], "pid": 1234}``; then it serves until
SIGINT/SIGTERM and exits 0.

``--die FILE`` serves the chip of a die file (made from ``--seed`` / ``--fidelity`` if it does
not exist yet; an existing die keeps its own): loaded at start with the wall time since its
last save applied as chip time (unless ``--freeze``), saved after every command that changes
it, locked while served.  Without ``--die`` the chip is a fresh die that is not persisted.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import tty
from collections.abc import Callable

from firmware_iface.sockio import IOV_MAX, drop_sent, tune_tcp
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware
from sim_backend.link import TO_BOARD, TO_HOST, LinkModel


class _Pump:
    """Moves bytes between one transport and the firmware through the link model."""

    def __init__(self, fw: VirtualFirmware, link: LinkModel) -> None:
        self.fw, self.link = fw, link
        self.guard = threading.Lock()

    def exchange(self, data: bytes) -> list:
        """Bytes from the host in; what goes back, as bytes-like parts to write in order (one
        part when the link model alters the stream: it works on whole chunks)."""
        with self.guard:
            if self.link.want_board_reset():
                self.fw.reboot()
            if not self.link.faulty:
                return self.fw.feed_parts(data)
            out = self.link.corrupt(self.fw.feed(self.link.corrupt(data, TO_BOARD)), TO_HOST)
            return [out] if out else []

    def target(self) -> memoryview | None:
        """Where the transport may receive the next bytes directly (``recv_into``): the rest of
        a BULK_PUT raw block the board receives in place; None on a faulty link (the link
        model must see every byte) and when no such block is being received."""
        return None if self.link.faulty else self.fw.raw_target()

    def received(self, n: int) -> list:
        """``n`` bytes were received into :meth:`target`'s view: what goes back (as exchange)."""
        with self.guard:
            return self.fw.received_parts(n)


def _write_parts(write: Callable[[list], int], parts, stop: threading.Event) -> None:
    """Write ``parts`` (a list of bytes-like, or one) in order with ``write`` (a gathered
    sendmsg / writev taking a list of byte views, returning how many bytes went), until all
    went or ``stop`` is set; a full buffer (TimeoutError, BlockingIOError) waits and tries again."""
    if isinstance(parts, (bytes, bytearray, memoryview)):
        parts = [parts]
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    i = 0
    while i < len(views) and not stop.is_set():
        try:
            n = write(views[i:i + IOV_MAX])
        except (TimeoutError, BlockingIOError, InterruptedError):
            continue
        i = drop_sent(views, n, i)


RECV = 1 << 20
"""Most bytes one read takes (bytes)."""
PEEK = 4096
"""Most bytes one read takes right after a raw block received in place (bytes): the next frame
and the first bytes of its block, so that the rest of the block is received in place too."""


def serve_tcp(pump: _Pump, host: str, port: int, stop: threading.Event) -> tuple[str, threading.Thread]:
    """Serve the board on TCP; one client at a time (one owner per link).  The replies to a
    burst of requests are held while more of the burst is already waiting in the socket and
    go out together once it is drained: one write (one wake-up of the host) per bulk round,
    not one per piece (docs/decisions/0016, link4)."""
    srv = socket.create_server((host, port))
    srv.settimeout(0.2)
    in_place = getattr(pump, "target", lambda: None)  # a pump that only exchanges: no in-place reads

    def loop() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                tune_tcp(conn)  # replies go out at once; a whole bulk round fits
                conn.settimeout(0.2)
                # gathered writes where the platform has them (not Windows: one buffer per call)
                send = conn.sendmsg if hasattr(conn, "sendmsg") else (lambda views, c=conn: c.send(views[0]))
                with conn:
                    peek = False
                    held: list = []  # replies not written yet: more of the burst is waiting
                    while not stop.is_set():
                        if held and not select.select([conn], [], [], 0)[0]:
                            try:  # the burst is over: its replies in one write
                                _write_parts(send, held, stop)
                            except OSError:
                                break
                            held = []
                        target = in_place()
                        try:  # a raw block's bytes straight into their place; else what is there
                            got = conn.recv_into(target) if target is not None else \
                                conn.recv(PEEK if peek else RECV)
                        except TimeoutError:
                            continue
                        except OSError:
                            break
                        if not got:
                            break
                        # after a block received in place, or a short read (a burst's end): the
                        # next read takes the next frame only, so that its block lands in place too
                        if target is not None:
                            out, peek = pump.received(got), True
                        else:
                            out, peek = pump.exchange(got), len(got) < PEEK
                        if isinstance(out, (bytes, bytearray, memoryview)):
                            held.append(out)
                        else:
                            held += out

    t = threading.Thread(target=loop, name="sim-tcp", daemon=True)
    t.start()
    return f"socket://{host}:{srv.getsockname()[1]}", t


def serve_pty(pump: _Pump, stop: threading.Event) -> tuple[str, threading.Thread]:
    """Serve the board on a pseudo-terminal; returns the slave device path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def loop() -> None:
        import select

        in_place = getattr(pump, "target", lambda: None)
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                continue
            target = in_place()
            try:  # a raw block's bytes straight into their place (as on TCP)
                got = os.readv(master, [target]) if target is not None else os.read(master, 1 << 16)
            except OSError:
                return
            out = pump.received(got) if target is not None else pump.exchange(got)
            _write_parts(lambda views: os.writev(master, views), out, stop)

    t = threading.Thread(target=loop, name="sim-pty", daemon=True)
    t.start()
    t.fds = (master, slave)  # type: ignore[attr-defined]  # kept open while serving
    return path, t


def _start_instruments(fw: VirtualFirmware, host: str) -> tuple[list[dict], Callable[[], None]]:
    from sim_backend.instruments import serve_instruments

    return serve_instruments(fw.world, host=host)


def serve(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snnbench sim serve", description=__doc__.splitlines()[0])
    add_serve_arguments(p)
    return run_serve(p.parse_args(argv))


def _seed(text: str) -> int:
    """argparse type for seeds: an integer >= 0 (numpy's SeedSequence refuses negatives)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="TCP port for the chip link (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--pty", action="store_true", help="serve the chip on a pseudo-terminal instead of TCP")
    p.add_argument("--seed", type=_seed, default=1, help="chip seed (device-to-device map)")
    p.add_argument("--run-seed", type=_seed, default=0, help="run seed (cycle-to-cycle noise)")
    p.add_argument("--fidelity", default="typical", choices=["ideal", "typical", "worst"])
    p.add_argument("--no-instruments", action="store_true", help="serve the chip only")
    p.add_argument("--ack-ms", type=float, default=None,
                   help="acknowledge long jobs still running after this many ms with BUSY (default: never)")
    p.add_argument("--die", metavar="FILE", default=None,
                   help="die file holding the chip's state (created from --seed/--fidelity if missing); "
                        "without it the chip is a fresh die that is not persisted")
    p.add_argument("--freeze", action="store_true",
                   help="with --die: no wall time passes between sessions (bit-identical reads)")
    p.add_argument("--lifeline", action="store_true",
                   help="exit when stdin reaches end-of-file (the parent that holds the pipe died); "
                        "used by the bench so no simulator outlives it")
    p.add_argument("--parent-pid", type=_seed, default=None, metavar="PID",
                   help="with --lifeline: also exit when this parent dies (Linux parent-death signal)")
    for name, help_ in (("ber", "bit-error rate per bit"), ("drop", "probability a chunk is dropped"),
                        ("dup", "probability a chunk is duplicated"), ("stall", "probability a chunk is held back"),
                        ("reorder", "probability a chunk is overtaken by the next"),
                        ("board-reset", "probability the board resets per chunk")):
        p.add_argument(f"--{name}", type=float, default=0.0, help=f"link fault: {help_}")


def run_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is outside 0..65535")
    done = threading.Event()
    if getattr(args, "lifeline", False):  # first, so a parent dying during start-up is seen too
        from sim_backend import lifeline

        lifeline.arm(args.parent_pid)   # already armed when started as python -m sim_backend
        lifeline.on_lost(done.set)
    link = LinkModel(ber=args.ber, drop=args.drop, dup=args.dup, stall=args.stall, reorder=args.reorder,
                     board_reset=args.board_reset, seed=args.run_seed + 7919)
    if args.freeze and not args.die:
        raise ValueError("--freeze needs --die FILE")
    if args.ack_ms is not None and not 0 <= args.ack_ms <= 60_000:
        raise ValueError(f"--ack-ms {args.ack_ms} is outside 0..60000")
    die = None
    if args.die:
        from sim_backend.die import OpenDie

        die = OpenDie(args.die, freeze=args.freeze, seed=args.seed, fidelity=args.fidelity,
                      run_seed=args.run_seed)
    try:
        return _serve_board(args, link, make_board(args.seed, args.run_seed, args.fidelity, die=die), die, done)
    finally:
        if die is not None:
            die.close()


def _serve_board(args: argparse.Namespace, link: LinkModel, fw: VirtualFirmware, die,
                 done: threading.Event) -> int:
    if args.ack_ms is not None:
        fw.ack_s = args.ack_ms * 1e-3
    pump = _Pump(fw, link)
    stop = threading.Event()
    if args.pty:
        url, _thread = serve_pty(pump, stop)
    else:
        try:
            url, _thread = serve_tcp(pump, args.host, args.port, stop)
        except OSError as exc:
            raise OSError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    smus, stop_instruments = ([], lambda: None) if args.no_instruments else _start_instruments(fw, args.host)

    def on_signal(signum, frame):  # noqa: ARG001
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    gc.collect()
    gc.freeze()  # start-up's objects (modules, the chip model) are never collected: a full
    # collection, triggered by the allocations of serving, skips them instead of walking them
    print(json.dumps({"chip": url, "smu": smus, "fidelity": fw.chip.fidelity, "seed": fw.chip.chip_seed,
                      "run_seed": args.run_seed, "pid": os.getpid(),
                      "die": str(die.path.resolve()) if die is not None else None,
                      "freeze": bool(args.freeze)}), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop.set()
        stop_instruments()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve())
