"""Link benchmark (issue 2, issue 17 item 4): frame codec, spike packing, bulk upload/readout.

Every figure is printed with a ratio to a baseline measured in the same run:
- frame encode+decode MB/s vs a plain ``bytes`` copy + zlib CRC of the same data;
- spike packing events/s (absolute target: >= 20 M events/s);
- bulk upload and output readout through socket:// and a pty to ``sim serve`` (a separate
  process), as ratios to the raw throughput of the same kind of transport in the same run:
  upload = UPLOAD_SPIKES of already-packed spike trains (the link: driver, frames, board
  storing them, COMMIT) vs the same bytes written one way to a sink that answers with one byte;
  readout = the transfer of READ_OUTPUT's reply (the BULK_GET rounds after COMMIT) vs a source
  that answers one byte with the same number of bytes; the whole READ_OUTPUT command (the
  board computing its reply included) is reported beside it.  Target (issue 17): >= 0.5x raw.  The end-to-end figures (packing and
  decoding included) and the bounded path of issue 16 (1 KiB STAGE/FETCH frames, one round
  trip each) are reported beside them.  Repetitions are interleaved (raw, link, raw, link...);
  each ratio is the median over repetitions with its spread (min..max).

    .venv/bin/python benchmarks/bench_link.py [--quick] [--json] [--reps N] [--only socket|pty]
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tty

import numpy as np
import psutil

from drivers.pechip import PEChip
from firmware_iface import messages as msg
from firmware_iface.framing import Frame, FrameDecoder, encode_frame
from firmware_iface.sockio import tune_tcp
from firmware_iface.spec import Opcode, PulseKind
from firmware_iface.spikes import encode_upload


def best(fn, repeat=5):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def codec(size=1 << 20):
    payload = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    dec = FrameDecoder()

    def run():
        (f,) = dec.feed(encode_frame(Frame(0x20, 1, payload)))
        assert len(f.payload) == size

    import zlib

    def base():
        zlib.crc32(bytes(bytearray(payload)))

    t, tb = best(run), best(base)
    return {"frame_codec_MBps": size / t / 1e6, "crc_copy_baseline_MBps": size / tb / 1e6,
            "ratio_to_baseline": tb / t}


def packing(n=2000, rate=0.05):
    sp = np.random.default_rng(1).random((n, 300, 128)) < rate
    events = int(sp.sum())
    t = best(lambda: encode_upload(sp), 3)
    tb = best(lambda: np.packbits(sp, axis=-1), 3)
    return {"spike_packing_events_per_s": events / t, "target_events_per_s": 20e6,
            "ratio_to_target": events / t / 20e6, "packbits_baseline_events_per_s": events / tb,
            "ratio_to_packbits": tb / t}


class Raw:
    """Raw baselines of one transport: the host end and a far end in a thread that either
    swallows ``n`` bytes and answers one (upload shape) or answers one byte with ``n`` bytes
    (readout shape)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "socket":
            srv = socket.create_server(("127.0.0.1", 0))
            host = socket.create_connection(("127.0.0.1", srv.getsockname()[1]))
            far, _ = srv.accept()
            srv.close()
            for sock in (host, far):  # the raw baseline gets what the link's ends get
                tune_tcp(sock)
            self._socks = (host, far)
            self.h_read, self.h_write = (lambda: host.recv(1 << 20)), host.sendall
            self.f_read, self.f_write = (lambda: far.recv(1 << 20)), far.sendall
        else:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fds = (master, slave)
            self.h_read, self.h_write = (lambda: os.read(slave, 1 << 16)), (lambda b: _write_all(slave, b))
            self.f_read, self.f_write = (lambda: os.read(master, 1 << 16)), (lambda b: _write_all(master, b))

    def _far(self, fn) -> threading.Thread:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        return t

    def upload(self, data: bytes) -> float:
        """Seconds to move ``data`` host -> far end and get its one-byte acknowledgement."""
        n = len(data)

        def sink():
            got = 0
            while got < n:
                got += len(self.f_read())
            self.f_write(b"k")

        t = self._far(sink)
        t0 = time.perf_counter()
        self.h_write(data)
        assert self.h_read() == b"k"
        dt = time.perf_counter() - t0
        t.join()
        return dt

    def readout(self, data: bytes) -> float:
        """Seconds from a one-byte request to the last of ``len(data)`` bytes answered."""
        n = len(data)

        def source():
            self.f_read()
            self.f_write(data)

        t = self._far(source)
        t0 = time.perf_counter()
        self.h_write(b"r")
        got = 0
        while got < n:
            got += len(self.h_read())
        dt = time.perf_counter() - t0
        t.join()
        return dt

    def close(self) -> None:
        for s in getattr(self, "_socks", ()):
            s.close()
        for fd in getattr(self, "_fds", ()):
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    v = memoryview(data)
    while v:
        v = v[os.write(fd, v[:1 << 16]):]


class TimedChip(PEChip):
    """The driver, timing the transfer phase of bulk readouts (BULK_GET pieces after COMMIT):
    the link's part of READ_OUTPUT, without the board computing the reply; wall time and the
    CPU time of both processes (``board``: the simulator's psutil.Process, when set)."""

    get_s = 0.0
    get_cpu_host = get_cpu_board = 0.0
    board: "psutil.Process | None" = None

    def _bulk_get(self, tid, total, first):
        t0, c0 = time.perf_counter(), time.process_time()
        b0 = _cpu(self.board) if self.board is not None else 0.0
        try:
            return super()._bulk_get(tid, total, first)
        finally:
            self.get_s += time.perf_counter() - t0
            self.get_cpu_host += time.process_time() - c0
            if self.board is not None:
                self.get_cpu_board += _cpu(self.board) - b0


def serve(mode):
    cmd = [sys.executable, "-m", "sim_backend", "serve", "--fidelity", "ideal", "--no-instruments"]
    if mode == "pty":
        cmd.append("--pty")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    return p, json.loads(p.stdout.readline())["chip"]


def _prepare(chip: PEChip, n_read: int) -> None:
    """Program every G+ column high and lower the threshold so the readout carries many spikes."""
    rows, cols = np.meshgrid(np.arange(128), np.arange(0, chip.info().columns, 2), indexing="ij")
    for _ in range(3):
        chip.pulse(PulseKind.SET, rows.ravel(), cols.ravel(), 2.0, 1.5, 0.0, 1e-6)
    chip.write_register("THRESHOLD", 0.1)
    sp = np.random.default_rng(3).random((n_read, 300, 128)) < 0.05
    chip.upload_spikes(sp, slot=0)
    chip.run(n_read, slot=0)


def _upload_payloads(chip: PEChip, sp: np.ndarray, slot: int) -> list[bytes]:
    """The UPLOAD_SPIKES payloads ``upload_spikes`` sends for ``sp`` (same split)."""
    per_sample = (sp.shape[1] * sp.shape[2] + 7) // 8 + 16
    per_frame = max(1, (chip.info().max_payload - 64) // per_sample)
    return [encode_upload(sp[i:i + per_frame], slot=slot + i) for i in range(0, sp.shape[0], per_frame)]


def transport(mode: str, reps: int, n_up: int, n_read: int) -> dict:
    p, url = serve(mode)
    raw = Raw(mode)
    try:
        with TimedChip(url, timeout_s=30) as chip:
            _prepare(chip, n_read)
            sp = np.random.default_rng(2).random((n_up, 300, 128)) < 0.05
            payloads = _upload_payloads(chip, sp, slot=n_read)
            up_bytes = sum(map(len, payloads))
            read_req = msg.encode_run(0, n_read)
            reply_cap = 12 + n_read * chip.info().neurons * (2 + 4 * 300)
            rd_bytes = len(chip.call(Opcode.READ_OUTPUT, read_req, reply_bytes=reply_cap))
            up_blob, rd_blob = b"\x55" * up_bytes, b"\x55" * rd_bytes
            rows: dict[str, list[float]] = {k: [] for k in ("raw_up", "link_up", "e2e_up", "raw_rd", "link_rd",
                                                             "cmd_rd", "e2e_rd")}
            board = chip.board = psutil.Process(p.pid)
            chip.get_cpu_host = chip.get_cpu_board = 0.0
            cpu = {k: 0.0 for k in ("raw_up", "host_up", "board_up", "raw_rd", "host_rd", "board_rd")}
            for _ in range(reps):  # interleaved: every figure of a repetition under the same load
                c0 = time.process_time()
                rows["raw_up"].append(raw.upload(up_blob))
                cpu["raw_up"] += time.process_time() - c0
                c0, b0 = time.process_time(), _cpu(board)
                t0 = time.perf_counter()
                for pl in payloads:
                    chip.call(Opcode.UPLOAD_SPIKES, pl)
                rows["link_up"].append(time.perf_counter() - t0)
                cpu["host_up"] += time.process_time() - c0
                cpu["board_up"] += _cpu(board) - b0
                t0 = time.perf_counter()
                chip.upload_spikes(sp, slot=n_read)
                rows["e2e_up"].append(time.perf_counter() - t0)
                c0 = time.process_time()
                rows["raw_rd"].append(raw.readout(rd_blob))
                cpu["raw_rd"] += time.process_time() - c0
                chip.get_s = 0.0
                c0, b0 = time.process_time(), _cpu(board)
                t0 = time.perf_counter()
                chip.call(Opcode.READ_OUTPUT, read_req, reply_bytes=reply_cap)
                rows["cmd_rd"].append(time.perf_counter() - t0)
                cpu["host_rd"] += time.process_time() - c0
                cpu["board_rd"] += _cpu(board) - b0
                rows["link_rd"].append(chip.get_s)
                t0 = time.perf_counter()
                chip.read_outputs(n_read)
                rows["e2e_rd"].append(time.perf_counter() - t0)
            get_cpu = {"host_get": chip.get_cpu_host, "board_get": chip.get_cpu_board}
            chip.board = None
            chip.use_bulk = False  # the bounded path of issue 16, once, on a quarter of the upload
            t0 = time.perf_counter()
            chip.call(Opcode.UPLOAD_SPIKES, encode_upload(sp[: max(1, n_up // 4)], slot=n_read))
            t_b = time.perf_counter() - t0
            b_bytes = len(encode_upload(sp[: max(1, n_up // 4)]))
            t0 = time.perf_counter()
            chip.call(Opcode.READ_OUTPUT, read_req, reply_bytes=reply_cap)
            t_brd = time.perf_counter() - t0
            chip.use_bulk = True
            stats = chip.stats
    finally:
        raw.close()
        p.terminate()
        p.wait()
    ratio = lambda a, b: [x / y for x, y in zip(rows[a], rows[b])]  # noqa: E731  time ratios
    up_r, rd_r = ratio("raw_up", "link_up"), ratio("raw_rd", "link_rd")
    e2e_up, e2e_rd, cmd_rd = ratio("raw_up", "e2e_up"), ratio("raw_rd", "e2e_rd"), ratio("raw_rd", "cmd_rd")
    med = lambda v: float(np.median(v))  # noqa: E731
    raw_up_bps = up_bytes / med(rows["raw_up"])
    raw_rd_bps = rd_bytes / med(rows["raw_rd"])
    return {
        "upload_bytes": up_bytes, "readout_bytes": rd_bytes, "readout_samples": n_read,
        "raw_up_MBps": raw_up_bps / 1e6, "link_up_MBps": up_bytes / med(rows["link_up"]) / 1e6,
        "upload_ratio_to_raw": med(up_r), "upload_ratio_spread": [min(up_r), max(up_r)],
        "raw_readout_MBps": raw_rd_bps / 1e6, "link_readout_MBps": rd_bytes / med(rows["link_rd"]) / 1e6,
        "readout_ratio_to_raw": med(rd_r), "readout_ratio_spread": [min(rd_r), max(rd_r)],
        "read_output_command_ratio_to_raw": med(cmd_rd),
        "upload_end_to_end_ratio_to_raw": med(e2e_up), "readout_end_to_end_ratio_to_raw": med(e2e_rd),
        "readout_samples_per_s": n_read / med(rows["e2e_rd"]),
        "bounded_path_upload_ratio_to_raw": (b_bytes / t_b) / raw_up_bps,
        "bounded_path_readout_ratio_to_raw": (rd_bytes / t_brd) / raw_rd_bps,
        "link_retries": stats.retries, "link_bad_frames": stats.bad_frames,
        # CPU ms per MB moved, over the repetitions (independent of the machine's load): host = the
        # driver's process, board = the simulator's, raw = both ends of the baseline (one process);
        # *_rd covers the whole READ_OUTPUT command (the board computing its reply included),
        # *_get only the transfer of the reply (the BULK_GET rounds after COMMIT, both reads of
        # a repetition: the command's and read_outputs')
        **{f"cpu_ms_per_MB_{k}": 1e3 * v / (reps * (up_bytes if k.endswith("up") else rd_bytes) / 1e6)
           for k, v in cpu.items()},
        **{f"cpu_ms_per_MB_{k}": 1e3 * v / (2 * reps * rd_bytes / 1e6) for k, v in get_cpu.items()},
    }


def _cpu(proc: psutil.Process) -> float:
    """CPU seconds of every thread of ``proc``: ns-resolution run time from the scheduler where
    Linux offers it (/proc/PID/task/*/schedstat), else psutil's tick-resolution times."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total * 1e-9
    except OSError:
        t = proc.cpu_times()
        return t.user + t.system


def _arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv[:-1] else default


def main() -> int:
    quick = "--quick" in sys.argv
    reps = int(_arg("--reps", "3" if quick else "7"))
    modes = [m for m in ("socket", "pty") if _arg("--only", m) == m]
    out = {"load_1min": os.getloadavg()[0], "codec": codec(), "packing": packing()}
    for mode in modes:
        out[mode] = transport(mode, reps, n_up=400 if quick else 1000, n_read=100 if quick else 200)
    if "--json" in sys.argv:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(k, {a: (round(b, 3) if isinstance(b, float) else b) for a, b in v.items()}
                  if isinstance(v, dict) else round(v, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
