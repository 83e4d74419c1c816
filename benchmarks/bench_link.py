"""Foundation benchmark (issue 2): frame codec, spike packing, bulk upload/readout.

Every figure is printed with a ratio to a baseline measured in the same run:
- frame encode+decode MB/s vs a plain ``bytes`` copy + zlib CRC of the same data;
- spike packing events/s (absolute target: >= 20 M events/s);
- bulk upload (MB/s) and output readout (samples/s) through socket:// and a pty to ``sim serve``; the
  upload as a ratio to the raw one-way throughput of the same kind of transport (the same
  bytes written to a sink that answers each block with one byte, measured here).
  Target: >= 50 % of raw.

    .venv/bin/python benchmarks/bench_link.py [--json]
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

from drivers.pechip import PEChip
from firmware_iface.framing import Frame, FrameDecoder, encode_frame
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


def _sink(read, write, nbytes, stop):
    """Far side of the raw baseline: swallow ``nbytes`` per round, then acknowledge with one byte
    (the same shape as an upload: bulk one way, a short reply back)."""
    while not stop.is_set():
        got = 0
        while got < nbytes:
            d = read()
            if not d:
                return
            got += len(d)
        write(b"k")


def raw_sink_tcp(nbytes):
    """Raw one-way TCP throughput (bytes/s) to a sink that acknowledges each block."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        c, _ = srv.accept()
        with c:
            _sink(lambda: c.recv(1 << 20), c.sendall, nbytes, stop)

    threading.Thread(target=serve, daemon=True).start()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = b"\x55" * nbytes

    def run():
        s.sendall(data)
        assert s.recv(1) == b"k"

    t = best(run, 3)
    stop.set()
    s.close()
    srv.close()
    return nbytes / t


def raw_sink_pty(nbytes):
    """Raw one-way pty throughput (bytes/s) to a sink that acknowledges each block."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    threading.Thread(target=_sink, args=(lambda: os.read(master, 1 << 16), lambda b: os.write(master, b),
                                         nbytes, stop), daemon=True).start()
    data = memoryview(b"\x55" * nbytes)

    def run():
        v = data
        while v:
            v = v[os.write(slave, v[:1 << 16]):]
        assert os.read(slave, 1) == b"k"

    t = best(run, 3)
    stop.set()
    return nbytes / t


def bulk(url, n=2000):
    sp = np.random.default_rng(2).random((n, 300, 128)) < 0.05
    with PEChip(url, timeout_s=30) as chip:
        chip.info()
        s0 = chip.stats.snapshot()
        t0 = time.perf_counter()
        chip.upload_spikes(sp)
        t_up = time.perf_counter() - t0
        up = chip.stats.since(s0)
        chip.run(n)
        s1 = chip.stats.snapshot()
        t0 = time.perf_counter()
        chip.read_outputs(n)
        t_rd = time.perf_counter() - t0
    return (up.bytes_tx + up.bytes_rx) / t_up, n / t_rd


def serve(mode):
    cmd = [sys.executable, "-m", "sim_backend", "serve", "--fidelity", "ideal", "--no-instruments"]
    if mode == "pty":
        cmd.append("--pty")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    return p, json.loads(p.stdout.readline())["chip"]


def main() -> int:
    out = {"codec": codec(), "packing": packing()}
    for mode, raw in (("socket", raw_sink_tcp), ("pty", raw_sink_pty)):
        p, url = serve(mode)
        try:
            up, rd = bulk(url)
        finally:
            p.terminate()
            p.wait()
        r = raw(8 << 20)
        out[mode] = {"upload_MBps": up / 1e6, "raw_one_way_MBps": r / 1e6, "upload_ratio_to_raw": up / r,
                     "readout_samples_per_s": rd, "readout_ratio_to_silicon_rate": rd / 22568.0,
                     "upload_ratio_to_3Mbaud_link": up / 300e3}
    if "--json" in sys.argv:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(k, {a: round(b, 3) for a, b in v.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
