"""Sections [op.*]: every opcode, its refusals and boundary values (docs/protocol.md, Opcodes)."""
from __future__ import annotations

import json
import struct

import numpy as np

from bench.conformance.core import Skip, check, expect, expect_status
from firmware_iface import messages as msg
from firmware_iface.spec import REGISTERS, REGISTER_BY_NAME, Opcode, ReadMode, Status
from firmware_iface.spec_text import MAX_STEPS, MAX_WAIT_NS
from firmware_iface.spikes import decode_output, encode_upload

THRESHOLD, N_STEPS = REGISTER_BY_NAME["THRESHOLD"], REGISTER_BY_NAME["N_STEPS"]


def _uv(ctx) -> int:
    return int(round(ctx.sandbox.v_read_v * 1e6))


def _info(link) -> msg.ChipInfo:
    return msg.decode_info(link.ok(Opcode.GET_INFO))


# --- HELLO / PING / GET_INFO -----------------------------------------------------------------
@check("op.hello", "HELLO with a non-empty payload is answered BAD_PAYLOAD.")
def hello_payload(ctx):
    link = ctx.raw()
    link.session = 0x1234
    expect_status(link.request(Opcode.HELLO, b"x", seq=0), Status.BAD_PAYLOAD, "HELLO with a payload")


@check("op.ping", "PING echoes its payload unchanged, zero bytes and the 256-byte maximum included.")
def ping_echo(ctx):
    link = ctx.link()
    for p in (b"", b"\x00", bytes(range(256))):
        expect(link.ok(Opcode.PING, p) == p, "PING echo differs", p.hex()[:32], "")


@check("op.ping", "PING with more than 256 payload bytes is answered BAD_PAYLOAD.")
def ping_too_long(ctx):
    link = ctx.link()
    expect_status(link.request(Opcode.PING, bytes(257)), Status.BAD_PAYLOAD, "PING of 257 bytes")


@check("op.get_info", "GET_INFO answers the INFO record (protocol 2) and `levels` ascending conductance levels.")
def info_record(ctx):
    link = ctx.link()
    info = _info(link)
    expect(info.protocol_version == 2, "INFO.protocol", 2, info.protocol_version)
    lv = np.asarray(info.levels_s)
    expect(lv.size >= 2 and bool(np.all(np.diff(lv) > 0)), "levels not ascending", "ascending", lv.tolist())
    expect(info.max_steps >= 1 and info.sample_slots >= 1 and info.rows >= 1 and info.columns >= 2,
           "INFO limits implausible", "positive", (info.max_steps, info.sample_slots, info.rows, info.columns))


@check("op.get_info", "GET_INFO with a non-empty payload is answered BAD_PAYLOAD.")
def info_payload(ctx):
    expect_status(ctx.link().request(Opcode.GET_INFO, b"x"), Status.BAD_PAYLOAD, "GET_INFO with a payload")


# --- registers -----------------------------------------------------------------------------
@check("op.reg_read", "After RESET every register reads its default code (register table).")
def reg_defaults(ctx):
    link = ctx.link()
    for reg in REGISTERS:
        if not reg.writable:
            continue
        rid, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(reg.id)))
        expect((rid, code) == (reg.id, reg.default_code), f"{reg.name} after RESET", (reg.id, reg.default_code),
               (rid, code))


@check("op.reg_read", "REG_READ of an unknown register is answered OUT_OF_RANGE; a short payload BAD_PAYLOAD.")
def reg_read_refusals(ctx):
    link = ctx.link()
    expect_status(link.request(Opcode.REG_READ, msg.encode_reg(0x7F)), Status.OUT_OF_RANGE, "REG_READ 0x7F")
    expect_status(link.request(Opcode.REG_READ, b"\x01\x00"), Status.BAD_PAYLOAD, "REG_READ with 2 bytes")


@check("op.reg_write", "REG_WRITE accepts the minimum and maximum codes and answers the code now in force.")
def reg_write_bounds(ctx):
    link = ctx.link()
    for reg in (THRESHOLD, N_STEPS, REGISTER_BY_NAME["TAU"]):
        for code in (reg.min_code, reg.max_code, reg.default_code):
            rid, got = msg.decode_reg(link.ok(Opcode.REG_WRITE, msg.encode_reg(reg.id, code)))
            expect((rid, got) == (reg.id, code), f"REG_WRITE {reg.name} = {code}", (reg.id, code), (rid, got))
            _, back = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(reg.id)))
            expect(back == code, f"{reg.name} read back", code, back)


@check("op.reg_write", "REG_WRITE outside [min, max], of a read-only or an unknown register is answered "
                       "OUT_OF_RANGE and changes nothing.")
def reg_write_refusals(ctx):
    link = ctx.link()
    for reg, code in ((THRESHOLD, THRESHOLD.max_code + 1), (THRESHOLD, THRESHOLD.min_code - 1),
                      (N_STEPS, 0)):
        expect_status(link.request(Opcode.REG_WRITE, msg.encode_reg(reg.id, code)), Status.OUT_OF_RANGE,
                      f"REG_WRITE {reg.name} = {code}")
    ro = [r for r in REGISTERS if not r.writable]
    for reg in ro:
        expect_status(link.request(Opcode.REG_WRITE, msg.encode_reg(reg.id, reg.default_code)),
                      Status.OUT_OF_RANGE, f"REG_WRITE of read-only {reg.name}")
    expect_status(link.request(Opcode.REG_WRITE, msg.encode_reg(0x7F, 1)), Status.OUT_OF_RANGE, "REG_WRITE 0x7F")
    _, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(THRESHOLD.id)))
    expect(code == THRESHOLD.default_code, "THRESHOLD changed by refused writes", THRESHOLD.default_code, code)


# --- READ_CELLS ------------------------------------------------------------------------------
@check("op.read_cells", "READ_CELLS answers LIST in request order, ROW as the row's columns and ARRAY "
                        "row-major, consistently.")
def read_modes(ctx):
    link = ctx.link()
    det = ctx.deterministic(link)
    info = _info(link)
    row = ctx.sandbox.rows.start
    avg = 4
    arr = msg.decode_conductances(link.ok(Opcode.READ_CELLS, msg.encode_read(
        msg.ReadRequest(ReadMode.ARRAY, _uv(ctx), avg))))
    expect(arr.size == info.rows * info.columns, "ARRAY size", info.rows * info.columns, arr.size)
    rowv = msg.decode_conductances(link.ok(Opcode.READ_CELLS, msg.encode_read(
        msg.ReadRequest(ReadMode.ROW, _uv(ctx), avg, row))))
    expect(rowv.size == info.columns, "ROW size", info.columns, rowv.size)
    cols = np.arange(info.columns)[::-1]
    lst = ctx.read(link, np.full(cols.size, row), cols, averages=avg)
    if det:
        a = arr.reshape(info.rows, info.columns)[row]
        expect(np.array_equal(a, rowv) and np.array_equal(lst, rowv[::-1]), "modes disagree on one row",
               rowv.tolist(), lst[::-1].tolist())


@check("op.read_cells", "READ_CELLS refuses v_read 0 or above 1 V and averages 0 (OUT_OF_RANGE), an unknown "
                        "mode or a wrong cell count (BAD_PAYLOAD).")
def read_refusals(ctx):
    link = ctx.link()
    for uv, avg in ((0, 1), (_uv(ctx), 0)):
        expect_status(link.request(Opcode.READ_CELLS, msg.encode_read(msg.ReadRequest(ReadMode.ARRAY, uv, avg))),
                      Status.OUT_OF_RANGE, f"READ_CELLS v_read_uv={uv} averages={avg}")
    bad_mode = struct.pack("<IHBBI", _uv(ctx), 1, 3, 0, 0)
    expect_status(link.request(Opcode.READ_CELLS, bad_mode), Status.BAD_PAYLOAD, "READ_CELLS mode 3")
    short = struct.pack("<IHBBI", _uv(ctx), 1, ReadMode.LIST, 0, 3) + bytes([0, 0, 1, 1])
    expect_status(link.request(Opcode.READ_CELLS, short), Status.BAD_PAYLOAD, "READ_CELLS 3 cells announced, 2 sent")


@check("op.read_cells", "READ_CELLS of a cell or row outside the array is answered OUT_OF_RANGE.")
def read_outside(ctx):
    link = ctx.link()
    info = _info(link)
    for rows, cols in (([info.rows], [0]), ([0], [info.columns])):
        req = msg.ReadRequest(ReadMode.LIST, _uv(ctx), 1, 0, np.array(rows), np.array(cols))
        expect_status(link.request(Opcode.READ_CELLS, msg.encode_read(req)), Status.OUT_OF_RANGE,
                      f"READ_CELLS of cell ({rows[0]}, {cols[0]})")
    if info.rows < 256:
        req = msg.ReadRequest(ReadMode.ROW, _uv(ctx), 1, info.rows)
        expect_status(link.request(Opcode.READ_CELLS, msg.encode_read(req)), Status.OUT_OF_RANGE,
                      f"READ_CELLS ROW {info.rows}")


# --- PULSE -------------------------------------------------------------------------------------
@check("op.pulse", "A SET pulse raises and a RESET pulse lowers a cell's conductance; DONE counts the pulses.")
def pulse_directions(ctx):
    link = ctx.link()
    rows, cols = ctx.sandbox.cells(4, 40)
    g0 = ctx.floor(link, rows, cols)
    done = link.ok(Opcode.PULSE, ctx.pulses(np.repeat(rows, 2), np.repeat(cols, 2), kind=1))
    count, _, _ = msg.decode_done(done)
    expect(count == 8, "DONE.count of 8 pulses", 8, count)
    g1 = ctx.read(link, rows, cols)
    expect(bool(np.all(g1 > g0)), "SET did not raise the cells", "> before", (g1 - g0).tolist())
    link.ok(Opcode.PULSE, ctx.pulses(rows, cols, kind=2))
    g2 = ctx.read(link, rows, cols)
    expect(bool(np.all(g2 < g1)), "RESET did not lower the cells", "< before", (g2 - g1).tolist())


@check("op.pulse", "A PULSE batch is checked whole first: one pulse outside the array or of kind 3 makes it "
                   "OUT_OF_RANGE and no pulse of the batch is applied.")
def pulse_batch_atomic(ctx):
    link = ctx.link()
    info = _info(link)
    rows, cols = ctx.sandbox.cells(4, 44)
    ctx.floor(link, rows, cols)
    g0 = ctx.read(link, rows, cols)
    st0 = ctx.status(link)
    good = msg.decode_pulses(ctx.pulses(rows, cols))
    for bad_field, value in (("row", info.rows), ("kind", 3)):
        batch = good.copy()
        batch[-1][bad_field] = value
        r = link.request(Opcode.PULSE, msg.encode_pulses(batch))
        expect_status(r, Status.OUT_OF_RANGE, f"PULSE batch with {bad_field} = {value}")
    st1 = ctx.status(link)
    expect(st1["chip_ns"] == st0["chip_ns"], "refused batches took chip time (pulses applied)",
           st0["chip_ns"], st1["chip_ns"])
    g1 = ctx.read(link, rows, cols)
    expect(bool(np.all(np.abs(g1 - g0) < 1e-6)), "a refused batch moved cells", (g0 * 1e6).tolist(),
           (g1 * 1e6).tolist())


@check("op.pulse", "A PULSE whose count disagrees with its records is answered BAD_PAYLOAD.")
def pulse_count(ctx):
    link = ctx.link()
    rows, cols = ctx.sandbox.cells(2, 48)
    p = ctx.pulses(rows, cols)
    expect_status(link.request(Opcode.PULSE, struct.pack("<I", 3) + p[4:]), Status.BAD_PAYLOAD,
                  "PULSE announcing 3 records with 2")


@check("op.pulse", "A pulse beyond the board's maxima (HELLO v_max_mv / width_max_ns) is answered "
                   "OUT_OF_RANGE (run only where that value is inside the station limits).")
def pulse_beyond_maxima(ctx):
    link = ctx.link()
    h = msg.decode_hello(link.hello.payload)
    lim = ctx.limits
    v = h.v_max_v + 1e-3
    if v > min(lim.v_set_max_v, lim.v_wl_max_v) and h.width_max_s + 1e-9 > lim.pulse_width_max_s:
        raise Skip(f"the board's maxima ({h.v_max_v:g} V, {h.width_max_s * 1e6:g} us) are above the station "
                   f"limits: testing them would exceed the station limits")
    rows, cols = ctx.sandbox.cells(1, 50)
    if v <= min(lim.v_set_max_v, lim.v_wl_max_v):
        p = msg.pulse_records([1], rows, cols, v, 0.0, 0.0, ctx.sandbox.width_s)
        expect_status(link.request(Opcode.PULSE, msg.encode_pulses(p)), Status.OUT_OF_RANGE, f"SET at {v:g} V")
    if h.width_max_s + 1e-9 <= lim.pulse_width_max_s:
        p = msg.pulse_records([1], rows, cols, ctx.sandbox.v_set_v, ctx.sandbox.v_wl_v, 0.0, h.width_max_s + 1e-9)
        expect_status(link.request(Opcode.PULSE, msg.encode_pulses(p)), Status.OUT_OF_RANGE, "width beyond maximum")


# --- WRITE_VERIFY (refusals; the algorithm is section [write-verify]) ---------------------------
def _schedule_bytes(ctx, **override) -> bytes:
    from firmware_iface.records import pack
    from firmware_iface.write_verify import PulseSchedule

    s = ctx.sandbox
    sched = PulseSchedule(set_start_v=min(1.2, s.v_set_v), set_max_v=s.v_set_v, set_wl_v=s.v_wl_v,
                          reset_start_v=min(1.2, s.v_reset_v), reset_max_v=s.v_reset_v, reset_wl_v=s.v_wl_v,
                          width_s=s.width_s, v_read_v=s.v_read_v, tolerance_s=2.5e-6, max_pulses=50)
    from firmware_iface.records import unpack

    r, _ = unpack("SCHEDULE", sched.to_bytes())
    fields = {k: int(r[k]) for k in r.dtype.names if not k.startswith("_")}
    fields.update(override)
    return pack("SCHEDULE", **fields)


def _wv_payload(sched: bytes, rows, cols, target_ns) -> bytes:
    t = np.zeros(np.size(rows), dtype=[("row", "u1"), ("col", "u1"), ("_pad", "<u2"), ("target_ns", "<u4")])
    t["row"], t["col"], t["target_ns"] = rows, cols, target_ns
    return sched + struct.pack("<I", t.size) + t.tobytes()


@check("op.write_verify", "A schedule with a zero field or start above maximum is answered BAD_PAYLOAD; a cell "
                          "outside the array OUT_OF_RANGE; nothing is pulsed.")
def wv_refusals(ctx):
    link = ctx.link()
    info = _info(link)
    rows, cols = ctx.sandbox.cells(2, 52)
    st0 = ctx.status(link)
    for over in ({"tolerance_ns": 0}, {"max_pulses": 0}, {"set_step_mv": 0},
                 {"set_start_mv": int(round(ctx.sandbox.v_set_v * 1e3)) + 1}):
        r = link.request(Opcode.WRITE_VERIFY, _wv_payload(_schedule_bytes(ctx, **over), rows, cols, [30000, 30000]))
        expect_status(r, Status.BAD_PAYLOAD, f"WRITE_VERIFY with {over}")
    r = link.request(Opcode.WRITE_VERIFY, _wv_payload(_schedule_bytes(ctx), [rows[0], info.rows], [0, 0],
                                                      [30000, 30000]))
    expect_status(r, Status.OUT_OF_RANGE, "WRITE_VERIFY with a cell outside the array")
    st1 = ctx.status(link)
    expect(st1["chip_ns"] == st0["chip_ns"], "refused WRITE_VERIFYs took chip time (pulsed or read)",
           st0["chip_ns"], st1["chip_ns"])


@check("op.write_verify", "WRITE_VERIFY answers DONE (count = targets) and one CELL_RESULT per target in "
                          "request order.")
def wv_reply_layout(ctx):
    link = ctx.link()
    rows, cols = ctx.sandbox.cells(3, 54)
    rows, cols = rows[::-1], cols[::-1]
    res, _ = msg.decode_cell_results(link.ok(Opcode.WRITE_VERIFY, _wv_payload(
        _schedule_bytes(ctx), rows, cols, [20000, 30000, 40000])))
    expect(res["row"].tolist() == rows.tolist() and res["col"].tolist() == cols.tolist(),
           "CELL_RESULT order", list(zip(rows.tolist(), cols.tolist())),
           list(zip(res["row"].tolist(), res["col"].tolist())))


# --- spikes: UPLOAD / RUN / READ_OUTPUT ---------------------------------------------------------
def _spikes(n=3, steps=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, steps, 128)) < 0.08


@check("op.upload_spikes", "UPLOAD_SPIKES stores dense and AER samples (COUNT = n); RUN and READ_OUTPUT then "
                           "give counts equal to the events per neuron, events ordered by step then neuron.")
def upload_run_read(ctx):
    link = ctx.link()
    info = _info(link)
    sp = _spikes()
    for enc in ("dense", "aer"):
        c = struct.unpack("<I", link.ok(Opcode.UPLOAD_SPIKES, encode_upload(sp, slot=5, choose=enc)))[0]
        expect(c == 3, f"COUNT after a {enc} upload", 3, c)
    link.ok(Opcode.RUN, msg.encode_run(5, 3))
    payload = link.ok(Opcode.READ_OUTPUT, msg.encode_run(5, 3))
    counts, out = decode_output(payload)
    expect(out.shape == (3, 40, info.neurons), "READ_OUTPUT shape", (3, 40, info.neurons), out.shape)
    words = np.frombuffer(payload, "<u4", offset=12 + 2 * 3 * info.neurons)
    per = np.split(words, np.cumsum(counts.sum(axis=1))[:-1])
    expect(all(bool(np.all(np.diff(w.astype(np.int64)) > 0)) for w in per), "events not ordered by step then "
           "neuron within a sample", "ascending", [w[:8].tolist() for w in per])


@check("op.upload_spikes", "UPLOAD_SPIKES with rows != INFO.rows or steps > max_steps is answered OUT_OF_RANGE; "
                           "beyond the sample slots NO_MEMORY; an AER event outside the sample BAD_PAYLOAD.")
def upload_refusals(ctx):
    link = ctx.link()
    info = _info(link)
    r = link.request(Opcode.UPLOAD_SPIKES, encode_upload(np.zeros((1, 10, 64), bool), choose="dense"))
    expect_status(r, Status.OUT_OF_RANGE, "upload of 64 rows")
    r = link.request(Opcode.UPLOAD_SPIKES, encode_upload(np.zeros((1, MAX_STEPS + 1, 128), bool), choose="aer"))
    expect_status(r, Status.OUT_OF_RANGE, f"upload of {MAX_STEPS + 1} steps")
    r = link.request(Opcode.UPLOAD_SPIKES, encode_upload(np.zeros((2, 10, 128), bool), slot=info.sample_slots - 1,
                                                         choose="aer"))
    expect_status(r, Status.NO_MEMORY, "upload beyond the last slot")
    aer = struct.pack("<IIHH", 0, 1, 10, 128) + bytes([1, 0, 0, 0]) + struct.pack("<II", 4, (10 << 8) | 3)
    expect_status(link.request(Opcode.UPLOAD_SPIKES, aer), Status.BAD_PAYLOAD, "AER event at step 10 of 10")


@check("op.run", "RUN of a slot without input is answered NOT_READY; DONE.chip_ns of a run is "
                 "n x (steps x TIME_STEP + LATENCY).")
def run_checks(ctx):
    link = ctx.link()
    info = _info(link)
    expect_status(link.request(Opcode.RUN, msg.encode_run(0, 1)), Status.NOT_READY, "RUN of an empty slot")
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(_spikes(2, 30), slot=0))
    _, dt = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(REGISTER_BY_NAME["TIME_STEP"].id)))
    _, ns, _ = msg.decode_done(link.ok(Opcode.RUN, msg.encode_run(0, 2)))
    want = 2 * (30 * dt + round(info.latency_s * 1e9))
    expect(abs(ns - want) <= 2, "RUN chip time", want, ns)


@check("op.run", "Every sample starts from the rest state: a sample gives the same output alone and after "
                 "another sample in one RUN (deterministic chips).")
def run_resets_state(ctx):
    link = ctx.link()
    if not ctx.deterministic(link):
        raise Skip("needs a noise-free chip (repeated reads differ)")
    sp = _spikes(2, 60, seed=3)
    # make the array conduct so neurons fire: a few SET pulses on the sandbox rows
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(sp, slot=0))
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(sp[1:], slot=10))
    link.ok(Opcode.RUN, msg.encode_run(0, 2))
    link.ok(Opcode.RUN, msg.encode_run(10, 1))
    _, both = decode_output(link.ok(Opcode.READ_OUTPUT, msg.encode_run(0, 2)))
    _, alone = decode_output(link.ok(Opcode.READ_OUTPUT, msg.encode_run(10, 1)))
    expect(np.array_equal(both[1], alone[0]), "the second sample's output depends on the first",
           int(alone.sum()), int(both[1].sum()))


@check("op.read_output", "READ_OUTPUT before RUN is answered NOT_READY; n = 0 gives an empty OUTPUT with "
                         "steps = N_STEPS.")
def read_output_checks(ctx):
    link = ctx.link()
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(_spikes(1, 20), slot=7))
    expect_status(link.request(Opcode.READ_OUTPUT, msg.encode_run(7, 1)), Status.NOT_READY, "READ_OUTPUT before RUN")
    p = link.ok(Opcode.READ_OUTPUT, msg.encode_run(0, 0))
    n, neurons, steps, events = struct.unpack_from("<IHHI", p)
    expect((n, steps, events) == (0, N_STEPS.default_code, 0), "OUTPUT of n = 0", (0, N_STEPS.default_code, 0),
           (n, steps, events))


# --- STATUS / RESET / WAIT / SIM_QUERY ----------------------------------------------------------
@check("op.status", "STATUS with a payload is answered BAD_PAYLOAD; last_error holds the most recent error.")
def status_checks(ctx):
    link = ctx.link()
    expect_status(link.request(Opcode.STATUS, b"x"), Status.BAD_PAYLOAD, "STATUS with a payload")
    link.request(Opcode.RUN, msg.encode_run(0, 1))  # NOT_READY
    st = ctx.status(link)
    expect(st["last_error"] == Status.NOT_READY, "STATUS.last_error after NOT_READY", int(Status.NOT_READY),
           st["last_error"])


@check("op.reset", "RESET restores register defaults, clears sample memory, results and last_error, keeps the "
                   "array, the chip clock and the session.")
def reset_checks(ctx):
    link = ctx.link()
    det = ctx.deterministic(link)
    rows, cols = ctx.sandbox.cells(len(ctx.sandbox.rows) * ctx.sandbox.columns)
    link.ok(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1700))
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(_spikes(1, 10), slot=0))
    link.ok(Opcode.RUN, msg.encode_run(0, 1))
    link.request(Opcode.RUN, msg.encode_run(1, 1))  # an error for last_error
    g0 = ctx.read(link, rows, cols)
    st0 = ctx.status(link)
    expect(link.ok(Opcode.RESET) == b"", "RESET reply payload", "empty", "")
    st1 = ctx.status(link)
    _, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(THRESHOLD.id)))
    expect(code == THRESHOLD.default_code, "THRESHOLD after RESET", THRESHOLD.default_code, code)
    got = (st1["samples_stored"], st1["outputs_ready"], st1["last_error"])
    expect(got == (0, 0, 0), "STATUS after RESET (samples, outputs, last_error)", (0, 0, 0), got)
    expect(st1["chip_ns"] >= st0["chip_ns"], "chip clock went back on RESET", f">= {st0['chip_ns']}", st1["chip_ns"])
    if det:
        g1 = ctx.read(link, rows, cols)
        expect(np.array_equal(g0, g1), "RESET changed the array", "unchanged", "changed")


@check("op.wait", "WAIT advances the chip clock by its duration; a duration above the maximum is answered "
                  "OUT_OF_RANGE.")
def wait_checks(ctx):
    link = ctx.link()
    st0 = ctx.status(link)
    _, ns, _ = msg.decode_done(link.ok(Opcode.WAIT, msg.encode_wait(250_000)))
    st1 = ctx.status(link)
    expect((ns, st1["chip_ns"] - st0["chip_ns"]) == (250_000, 250_000), "WAIT(250 us) chip time",
           (250_000, 250_000), (ns, st1["chip_ns"] - st0["chip_ns"]))
    expect_status(link.request(Opcode.WAIT, msg.encode_wait(MAX_WAIT_NS + 1)), Status.OUT_OF_RANGE,
                  "WAIT beyond the maximum")


@check("op.sim_query", "SIM_QUERY of an unknown name (or on a real board) is answered UNSUPPORTED.")
def sim_query(ctx):
    link = ctx.link()
    r = link.request(Opcode.SIM_QUERY, b"no such query")
    expect_status(r, Status.UNSUPPORTED, "SIM_QUERY 'no such query'")
    r = link.request(Opcode.SIM_QUERY, b"clock_s")
    if r.status == Status.OK:
        json.loads(r.payload)
