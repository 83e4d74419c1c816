"""Section [framing]: header fields, CRC, COBS, version byte, reply binding."""
from __future__ import annotations

import struct
import zlib

from bench.conformance.core import check, expect, expect_status
from bench.conformance.rawlink import raw_body, wire
from firmware_iface import messages as msg
from firmware_iface.spec import REGISTER_BY_NAME, Opcode, ReadMode, Status

THRESHOLD = REGISTER_BY_NAME["THRESHOLD"]


def _undecodable_reply(link, what: str):
    frames = link.collect(1)
    expect(len(frames) >= 1, f"no reply to {what}", "a BAD_FRAME reply", "nothing")
    f = frames[0]
    expect(f.status == Status.BAD_FRAME, f"{what} answered with status {f.status}", "BAD_FRAME", f.status)
    expect((f.opcode, f.seq, f.session, f.echo) == (0, 0, 0, 0),
           "a BAD_FRAME reply must carry opcode, seq, session and echo 0",
           (0, 0, 0, 0), (f.opcode, f.seq, f.session, f.echo))


def _threshold_untouched(link) -> None:
    reg, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(THRESHOLD.id)))
    expect(code == THRESHOLD.default_code, "a malformed REG_WRITE changed the register",
           THRESHOLD.default_code, code)


@check("framing", "Every reply copies the request's opcode, seq and session, has flags bit 0 set and "
                  "echoes the request's CRC-32 trailer.")
def reply_is_bound_to_its_request(ctx):
    link = ctx.link()
    data, crc = link.frame(Opcode.PING, b"conformance")
    link.send(data)
    frames = link.collect(1)
    expect(bool(frames), "no reply to PING", "a reply", "nothing")
    f = frames[0]
    want = (int(Opcode.PING), link.seq, link.session, 1, crc, b"conformance")
    got = (f.opcode, f.seq, f.session, f.flags & 1, f.echo, f.payload)
    expect(got == want, "reply header does not match the request (opcode, seq, session, flags, echo, payload)",
           want, got)


@check("framing", "A frame whose CRC-32 is wrong is answered BAD_FRAME (opcode, seq, session, echo 0) "
                  "and not executed.")
def bad_crc(ctx):
    link = ctx.link()
    body = raw_body(Opcode.REG_WRITE, link.next_seq(), msg.encode_reg(THRESHOLD.id, 1500), session=link.session)
    link.send(wire(body, crc=zlib.crc32(body) ^ 0x00010000))
    _undecodable_reply(link, "a frame with a wrong CRC")
    _threshold_untouched(link)


@check("framing", "A run that is not valid COBS is answered BAD_FRAME.")
def bad_cobs(ctx):
    link = ctx.link()
    link.send(b"\x09\x01\x02\x03\x00")  # code 9 announces 8 bytes, 3 follow
    _undecodable_reply(link, "invalid COBS")


@check("framing", "A frame whose length field differs from its payload size is malformed: BAD_FRAME, "
                  "not executed.")
def bad_length(ctx):
    link = ctx.link()
    payload = msg.encode_reg(THRESHOLD.id, 1500)
    body = raw_body(Opcode.REG_WRITE, link.next_seq(), payload, session=link.session, length=len(payload) + 1)
    link.send(wire(body))
    _undecodable_reply(link, "a wrong length field")
    _threshold_untouched(link)


@check("framing", "A frame with the reserved header field not 0 is malformed: BAD_FRAME, not executed.")
def reserved_field(ctx):
    link = ctx.link()
    body = raw_body(Opcode.REG_WRITE, link.next_seq(), msg.encode_reg(THRESHOLD.id, 1500), session=link.session,
                    rsv=1)
    link.send(wire(body))
    _undecodable_reply(link, "a non-zero reserved field")
    _threshold_untouched(link)


@check("framing", "A CRC-valid frame whose version byte is not 2 is answered BAD_VERSION with the "
                  "board's version (u8) as payload.")
def other_version(ctx):
    link = ctx.link()
    body = struct.pack("<BBBBHI", 1, Opcode.PING, 0, 0, 1, 4) + b"ping"  # a protocol-1 PING
    link.send(wire(body))
    frames = link.collect(1)
    expect(bool(frames), "no reply to a version-1 frame", "BAD_VERSION", "nothing")
    f = frames[0]
    expect((f.status, f.payload) == (Status.BAD_VERSION, bytes([2])), "wrong answer to a version-1 frame",
           (int(Status.BAD_VERSION), "02"), (f.status, f.payload.hex()))


@check("framing", "A response frame (flags bit 0) sent to the board is answered BAD_PAYLOAD.")
def response_sent_to_board(ctx):
    link = ctx.link()
    body = raw_body(Opcode.PING, link.next_seq(), b"x", session=link.session, flags=1)
    data = wire(body)
    r = link.exchange(data, zlib.crc32(body))
    expect_status(r, Status.BAD_PAYLOAD, "a response frame sent to the board")


@check("framing", "An opcode the board does not implement is answered UNKNOWN_OPCODE, bound to the request.")
def unknown_opcode(ctx):
    link = ctx.link()
    r = link.request(0x7E, b"")
    expect_status(r, Status.UNKNOWN_OPCODE, "opcode 0x7E")
    expect(r.frame.opcode == 0x7E, "reply opcode differs", 0x7E, r.frame.opcode)


@check("framing", "Long frames carry a correct CRC-32: a 12 KiB READ_CELLS reply and a 256-byte PING "
                  "decode without error.")
def long_frames_crc(ctx):
    link = ctx.link()
    errors = link.decoder.errors
    r = link.request(Opcode.PING, bytes(range(256)))
    expect(r.payload == bytes(range(256)), "256-byte PING not echoed", "0..255", r.payload.hex()[:64])
    uv = int(round(ctx.sandbox.v_read_v * 1e6))
    data, crc = link.frame(Opcode.READ_CELLS, msg.encode_read(msg.ReadRequest(ReadMode.ARRAY, uv, 1)))
    link.send(data)
    frames = link.collect(1, ctx.timeout_s)
    bad = link.decoder.errors - errors
    expect(bad == 0, f"{bad} reply frame(s) failed the CRC/COBS/length checks", 0, link.decoder.last_error)
    expect(bool(frames) and frames[0].echo == crc, "no valid reply to READ_CELLS ARRAY", "a reply", "none")
    n = ctx.sandbox.columns * 128
    expect(len(frames[0].payload) == 4 * n, "ARRAY reply size", 4 * n, len(frames[0].payload))
