"""firmware_iface/sockio.py: the socket helpers both ends of the link share (drop_sent after a
partial gathered write, tune_tcp).  Expected values are worked out by hand from the byte
strings below: views b"abc" | b"defg" | b"hi" (9 bytes)."""
from __future__ import annotations

import socket
import sys

import pytest

from firmware_iface.sockio import drop_sent, tune_tcp


def _views() -> list[memoryview]:
    return [memoryview(b"abc"), memoryview(b"defg"), memoryview(b"hi")]


def _left(views: list[memoryview], i: int) -> bytes:
    return b"".join(bytes(v) for v in views[i:])


def test_n_inside_the_first_view_leaves_its_tail():
    """Kills drop_sent mutants that drop the whole first view (or none of it) when it went in part."""
    views = _views()
    assert drop_sent(views, 2) == 0
    assert bytes(views[0]) == b"c"
    assert _left(views, 0) == b"cdefghi"


def test_n_across_views_trims_the_second():
    """Kills drop_sent mutants that stop after the first view or trim the wrong one: 5 bytes =
    all of b"abc" and b"de" of b"defg"."""
    views = _views()
    assert drop_sent(views, 5) == 1
    assert bytes(views[1]) == b"fg"
    assert _left(views, 1) == b"fghi"


def test_n_exactly_at_a_boundary_moves_on_whole():
    """Kills the `>` for `>=` mutant: 3 bytes end exactly at b"abc"'s end; b"defg" stays whole
    (the `>` mutant leaves an empty view at index 0 as "still to send")."""
    views = _views()
    assert drop_sent(views, 3) == 1
    assert bytes(views[1]) == b"defg"
    assert drop_sent(views, 4, 1) == 2
    assert _left(views, 2) == b"hi"


def test_all_sent_and_none_sent():
    """All 9 bytes: the index is past the end; 0 bytes: nothing moves."""
    views = _views()
    assert drop_sent(views, 0) == 0
    assert _left(views, 0) == b"abcdefghi"
    assert drop_sent(views, 9) == 3


def test_from_a_later_first_view():
    """``first`` is where the unsent bytes start: 3 bytes from index 1 leave b"g" of b"defg"."""
    views = _views()
    assert drop_sent(views, 3, 1) == 1
    assert bytes(views[1]) == b"g"
    assert views[0] == memoryview(b"abc")  # before ``first``: untouched


def test_the_tail_is_a_view_not_a_copy():
    """The unsent tail refers to the caller's bytes (a raw block is never copied to send it)."""
    data = bytearray(b"abcdef")
    views = [memoryview(data)]
    drop_sent(views, 2)
    data[2] = ord("X")
    assert bytes(views[0]) == b"Xdef"


def test_more_than_given_is_an_error():
    """A count past the views is a caller bug, reported rather than looping or ignored."""
    with pytest.raises(ValueError, match="1 bytes more"):
        drop_sent(_views(), 10)


def test_tune_tcp_sets_no_delay_and_the_buffers():
    """tune_tcp on a real TCP pair: Nagle off, and the asked buffer size (Linux reports twice
    the size asked, its bookkeeping overhead: socket(7))."""
    srv = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    try:
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the default: Nagle on
        tune_tcp(a, 65536)
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        if sys.platform.startswith("linux"):
            assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 65536
            assert a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536
    finally:
        for s in (a, b, srv):
            s.close()
