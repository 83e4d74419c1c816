"""Query latency of the SMUs over TCP: no Nagle / delayed-ACK stall on either side (issue 17).

A set command has no reply, so the instrument's TCP stack delays its ACK (Linux: 40 ms at
least, up to 200 ms).  If the controller's socket runs Nagle's algorithm, the next small
message (``:SYST:ERR?`` after ``:SOUR:VOLT 1.2``) is held in the kernel until that ACK
comes: every write-then-query exchange costs a delayed-ACK timeout (measured 41-44 ms per
query on loopback before the fix; docs/BENCHMARKS.md, "simulated SMU query latency").  VISA
specifies ``VI_ATTR_TCPIP_NODELAY`` = VI_TRUE by default (VPP-4.3); pyvisa-py 0.8 neither
applies it nor accepts it as an attribute, so the driver sets the socket option itself.
The same holds the other way round for the simulated instrument's replies: one ``send`` per
reply line, on a socket with Nagle off.

The checks are on the socket options and the send calls, not on wall time.
"""
from __future__ import annotations

import re
import socket

import pytest

from drivers.instruments import open_smus, safety
from drivers.instruments.base import VisaAdapter
from sim_backend.instruments import DEFAULT_BENCH, StubWorld, make_server, serve_instruments

LIMITS = {"max_voltage_v": 3.6, "max_current_a": 0.2}


def _nagle_off(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.fixture
def bench():
    desc, stop = serve_instruments(StubWorld())
    yield desc
    safety.shutdown_all()
    stop()


def test_every_smu_opened_like_a_campaign_point_has_nagle_off(bench):
    """kills VisaAdapter._set_nodelay mutants (call dropped, option set to 0, raises early on
    pyvisa-py's UnknownAttribute): every SMU of the simulated bench, opened through
    ``open_smus`` as a campaign point opens them, talks over a TCP socket with TCP_NODELAY set
    (VPP-4.3's VI_ATTR_TCPIP_NODELAY default, VI_TRUE)."""
    smus = open_smus([{**d, **LIMITS} for d in bench])
    try:
        assert [s.model for s in smus] == [m for m, _, _ in DEFAULT_BENCH]
        for s in smus:
            sock = s.adapter.inner._socket()
            assert isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM
            assert _nagle_off(sock), f"{s.model}: Nagle's algorithm is on (TCP_NODELAY not set)"
    finally:
        for s in smus:
            s.close()


def test_a_plain_visa_adapter_has_nagle_off_before_its_first_message():
    """kills the mutant that sets TCP_NODELAY lazily (after the first query) or only in
    open_smu: the VisaAdapter itself sets it when it opens the resource, so even the identity
    check ``*IDN?`` after the reset writes is not delayed."""
    srv = make_server("2450", StubWorld(), {1: "VDDA"}).start()
    ad = VisaAdapter(srv.resource, timeout_s=2.0)
    try:
        assert _nagle_off(ad._socket())
        assert ad.query("*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    finally:
        ad.close()
        srv.stop()


@pytest.mark.parametrize("model", ["2450", "B2901A", "2601B"])
def test_simulated_smu_replies_on_a_socket_with_nagle_off(model):
    """kills InstrumentServer._serve mutant: TCP_NODELAY not set on the accepted connection
    (then a reply split over two sends would wait for the controller's delayed ACK)."""
    srv = make_server(model, StubWorld(), {1: "VDDA"}).start()
    try:
        with socket.create_connection((srv.host, srv.port), timeout=2) as c:
            c.sendall(b"*IDN?\n")
            assert c.recv(200).endswith(b"\n")        # served: the connection is accepted
            assert srv._conn is not None and _nagle_off(srv._conn)
    finally:
        srv.stop()


class _RecordingConn:
    """Stands in for the accepted socket: hands out ``chunks`` on recv, records each send."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []

    def recv(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("model, queries", [
    ("2450", [b"*IDN?", b":SYST:ERR?", b":OUTP?"]),
    ("B2901A", [b"*IDN?", b":SYST:ERR?", b":OUTP1?"]),
    ("2601B", [b"print(localnode.linefreq)", b"print(errorqueue.next())", b"print(smua.source.output)"]),
])
def test_simulated_smu_writes_each_reply_in_one_send(model, queries):
    """kills InstrumentServer._serve_connection mutants that write the reply and its
    termination separately, or a reply in pieces: each query (three arriving in one TCP
    segment, and a set command with no reply between them) gives exactly one send, holding the
    whole reply line and its single "\\n" termination."""
    srv = make_server(model, StubWorld(), {1: "VDDA"})
    set_cmd = b"smua.source.levelv = 0" if model == "2601B" else b":SOUR:VOLT 0"
    conn = _RecordingConn([queries[0] + b"\n" + set_cmd + b"\n" + queries[1] + b"\n" + queries[2][:3],
                           queries[2][3:] + b"\n"])
    try:
        srv._serve_connection(conn)  # type: ignore[arg-type]
    finally:
        srv.stop()
    assert len(conn.sent) == len(queries)
    for data in conn.sent:
        assert data.endswith(b"\n") and data.count(b"\n") == 1 and len(data) > 1
    code = re.split(rb"[,\t]", conn.sent[1].strip())[0]
    assert float(code) == 0, conn.sent[1]      # the set command between the queries was accepted


def _wait_until_blocked_in_accept_loop(srv) -> None:
    """Until the server thread sits in its selector (so stop/kill must wake it: a thread that
    has not reached it yet would see the stop flag by itself)."""
    import sys
    import time

    for _ in range(5000):
        frame = sys._current_frames().get(srv._thread.ident)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if "_accept_loop" in names and "select" in names:
            return
        time.sleep(0.001)
    raise AssertionError(f"server thread never blocked in its accept loop: {names}")


@pytest.mark.parametrize("connected", [False, True])
def test_stop_ends_the_accept_loop_at_once_and_leaves_no_descriptor(connected):
    """kills InstrumentServer.stop/_serve mutants: no wake-up of the accept loop (it blocks in
    its selector with no timeout, so the thread would outlive stop()'s join), wake-up sockets
    left open after the thread ended.  Idle and with a controller connected."""
    srv = make_server("2450", StubWorld(), {1: "VDDA"}).start()
    client = None
    if connected:
        client = socket.create_connection((srv.host, srv.port), timeout=2)
        client.sendall(b"*IDN?\n")
        assert client.recv(200).endswith(b"\n")
    else:
        _wait_until_blocked_in_accept_loop(srv)
    srv.stop()
    try:
        assert not srv._thread.is_alive()
        assert srv._wake_r.fileno() == -1 and srv._wake_w.fileno() == -1
    finally:
        if client is not None:
            client.close()


def test_kill_ends_the_accept_loop_and_a_never_started_server_closes_its_sockets():
    """kills the mutants that leave kill() without a wake-up (the thread never ends) or leak
    the wake-up sockets of a server that was made but never started."""
    srv = make_server("B2901A", StubWorld(), {1: "VDDD"}).start()
    _wait_until_blocked_in_accept_loop(srv)
    srv.kill()
    srv._thread.join(timeout=5)
    assert not srv._thread.is_alive()
    assert srv._wake_r.fileno() == -1 and srv._wake_w.fileno() == -1
    idle = make_server("2601B", StubWorld(), {1: "VDDIO"})
    idle.stop()
    assert idle._wake_r.fileno() == -1 and idle._wake_w.fileno() == -1
