"""Golden byte vectors pin the wire format; a change here is a protocol change."""
import struct

import numpy as np
import pytest

from firmware_iface import gendoc
from firmware_iface import messages as msg
from firmware_iface.framing import FLAG_RESPONSE, Frame, VersionError, decode_body, encode_frame, frame_crc
from firmware_iface.records import records
from firmware_iface.spec import Opcode
from firmware_iface.spikes import decode_upload, encode_upload
from firmware_iface.write_verify import PulseSchedule
from tests.wire_ref import reference_frame, reference_uncobs, v1_frame


S = 0x1234ABCD
# (frame, independent reference bytes, pinned hex: a change here is a protocol change)
GOLDEN = {
    "ping": (Frame(Opcode.PING, 1, b"ping", session=S), reference_frame(0x01, 1, b"ping", session=S),
             "030201010201010105cdab3412010101020401010970696e6714d26b0100"),
    "get_info": (Frame(Opcode.GET_INFO, 2, session=S), reference_frame(0x02, 2, session=S),
                 "030202010202010105cdab34120101010101010105d46276c900"),
    "reg_write_v_read": (Frame(Opcode.REG_WRITE, 3, msg.encode_reg(0x01, 200_000), session=S),
                         reference_frame(0x04, 3, struct.pack("<HHI", 1, 0, 200_000), session=S),
                         "030204010203010105cdab3412010101020801010201010104400d03051848198d00"),
    "status_reply_not_ready": (Frame(Opcode.STATUS, 0xFFFF, b"", flags=FLAG_RESPONSE, status=7, session=S,
                                     echo=0xDEADBEEF),
                               reference_frame(0x30, 0xFFFF, flags=1, status=7, session=S, echo=0xDEADBEEF),
                               "0702300107ffff0109cdab3412efbeadde0101010597d6bb6800"),
    "hello": (Frame(Opcode.HELLO, 0, session=0x00C0FFEE), reference_frame(0x40, 0, session=0x00C0FFEE),
              "030240010101010104eeffc0010101010101010105d44c334b00"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_frames(name):
    frame, reference, hexed = GOLDEN[name]
    wire = encode_frame(frame)
    assert wire == reference
    assert wire.hex() == hexed
    assert decode_body(wire[:-1]) == frame


def test_reply_echo_is_the_request_crc_trailer():
    req = reference_frame(0x03, 9, struct.pack("<HHI", 4, 0, 0), session=S)
    body = decode_body(req[:-1])
    trailer = struct.unpack("<I", reference_uncobs(req[:-1])[-4:])[0]
    assert frame_crc(body) == trailer == body.crc


def test_version_byte_first_and_foreign_versions_refused():
    v1 = v1_frame(0x01, 1, b"ping")
    assert v1.hex() == "030101010201020401010970696e6711c63bfe00"  # the v1 golden PING frame
    with pytest.raises(VersionError) as exc:
        decode_body(v1[:-1])
    assert exc.value.version == 1


def test_pulse_record_layout():
    p = records("PULSE", 1)
    p["kind"], p["row"], p["col"], p["v_bl_mv"], p["v_wl_mv"], p["width_ns"] = 1, 5, 7, 1200, 1800, 1000
    payload = msg.encode_pulses(p)
    assert payload == (struct.pack("<I", 1) + bytes([1, 5, 7, 0]) + struct.pack("<HHHHI", 1200, 1800, 0, 0, 1000))
    assert encode_frame(Frame(Opcode.PULSE, 4, payload, session=7)) == reference_frame(0x11, 4, payload, session=7)
    assert encode_frame(Frame(Opcode.PULSE, 4, payload, session=7)).hex() == (
        "0302110102040101020701010101010102140101020101010401050705b004080701010103e8030105e87ecab800")


def test_schedule_bytes():
    # tolerance 2.5 uS crosses the wire as the integer 2500 nS
    assert PulseSchedule().to_bytes() == struct.pack(
        "<8HIIIHHHH", 1200, 100, 4000, 1800, 1200, 100, 4000, 3300, 1000, 200_000,
        2500, PulseSchedule().max_pulses, PulseSchedule().read_averages, 1, 0)
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
