"""Golden byte vectors pin the wire format; a change here is a protocol change."""
import struct
import zlib

import numpy as np
import pytest

from firmware_iface import gendoc
from firmware_iface import messages as msg
from firmware_iface.framing import FLAG_RESPONSE, Frame, decode_body, encode_frame
from firmware_iface.records import records
from firmware_iface.spec import Opcode
from firmware_iface.spikes import decode_upload, encode_upload
from firmware_iface.write_verify import PulseSchedule


def reference_cobs(data: bytes) -> bytes:
    """Textbook COBS, written independently of the library the code uses."""
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


GOLDEN = {
    "ping": (Frame(Opcode.PING, 1, b"ping"), "030101010201020401010970696e6711c63bfe00"),
    "get_info": (Frame(Opcode.GET_INFO, 2), "0301020102020101010105c58a766f00"),
    "reg_write_v_read": (Frame(Opcode.REG_WRITE, 3, msg.encode_reg(0x01, 200_000)),
                         "030104010203020801010201010104400d0305759567f500"),
    "status_reply_not_ready": (Frame(Opcode.STATUS, 0xFFFF, b"", flags=FLAG_RESPONSE, status=7),
                               "0701300107ffff01010105ca91d40500"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_frames(name):
    frame, hexed = GOLDEN[name]
    wire = encode_frame(frame)
    assert wire.hex() == hexed
    assert decode_body(wire[:-1]) == frame


def test_ping_frame_built_by_hand():
    header = struct.pack("<BBBBHI", 1, 0x01, 0, 0, 1, 4)
    body = header + b"ping"
    body += struct.pack("<I", zlib.crc32(body))
    assert encode_frame(Frame(Opcode.PING, 1, b"ping")) == reference_cobs(body) + b"\x00"


def test_pulse_record_layout():
    p = records("PULSE", 1)
    p["kind"], p["row"], p["col"], p["v_bl_mv"], p["v_wl_mv"], p["width_ns"] = 1, 5, 7, 1200, 1800, 1000
    payload = msg.encode_pulses(p)
    assert payload == (struct.pack("<I", 1) + bytes([1, 5, 7, 0]) + struct.pack("<HHHHI", 1200, 1800, 0, 0, 1000))
    assert encode_frame(Frame(Opcode.PULSE, 4, payload)).hex() == (
        "03011101020402140101020101010401050705b004080701010103e803010569901bda00")


def test_schedule_bytes():
    assert PulseSchedule().to_bytes() == struct.pack(
        "<8HIIfHHHH", 1200, 100, 4000, 1800, 1200, 100, 4000, 3300, 1000, 200_000,
        PulseSchedule().tolerance_s, PulseSchedule().max_pulses, PulseSchedule().read_averages, 1, 0)
    assert PulseSchedule.from_bytes(PulseSchedule().to_bytes())[0] == PulseSchedule().quantised()


def test_spike_upload_dense_and_aer_golden():
    sp = np.zeros((2, 2, 128), bool)
    sp[0, 0, 0] = True
    sp[0, 1, 127] = True
    for i in range(40):
        sp[1, i % 2, i * 3] = True
    payload = encode_upload(sp, slot=9)
    # sample 0 is sparse (2 events x 4 B < 32 B bitmap) -> AER; sample 1 has 40 events -> dense
    aer = struct.pack("<II", 0 << 8 | 0, 1 << 8 | 127)
    assert payload[:12] == struct.pack("<IIHH", 9, 2, 2, 128)
    assert payload[12:20] == bytes([1, 0, 0, 0]) + struct.pack("<I", 8)
    assert payload[20:28] == aer
    assert payload[28:36] == bytes([0, 0, 0, 0]) + struct.pack("<I", 32)
    bits = np.packbits(sp[1].reshape(-1), bitorder="little").tobytes()
    assert payload[36:] == bits
    slot, back, encs = decode_upload(payload)
    assert slot == 9 and encs.tolist() == [1, 0] and np.array_equal(back, sp)


def test_generated_docs_are_fresh():
    for path, text in gendoc.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python -m firmware_iface.gendoc"
