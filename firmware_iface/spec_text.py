"""Normative prose of the protocol, kept beside the definitions it describes.

``firmware_iface.gendoc`` renders these texts, together with the tables generated from
``firmware_iface.spec``, into docs/protocol.md.  Every behaviour a board must show is stated
here; the virtual firmware (sim_backend/firmware.py) implements it and
``snnbench conformance`` checks it, section by section (the section ids below).
"""
from __future__ import annotations

from dataclasses import dataclass

from firmware_iface.framing import HEADER, MAX_PAYLOAD, MAX_WIRE_FRAME, RAW_IDLE_S
from firmware_iface.spec import MAX_PING, Opcode

UART_BAUD = 3_000_000
"""Baud rate of the real board's UART (the host opens serial ports at this rate)."""
ACK_S = 0.5
"""A board starts its reply (final or BUSY) within this time after a request's last byte (s)."""
SLACK_S = 1.0
"""Added to every job deadline below (s)."""
READ_TIME_S = 2e-6
"""Time budget of one read of one cell (one average), used in the WRITE_VERIFY deadline (s)."""
MAX_WAIT_NS = 10**16
"""Longest WAIT the board accepts (ns, about 116 days)."""
MAX_STEPS = 4096
"""Largest number of steps per sample (INFO.max_steps)."""

def job_deadline_s(opcode: int, payload: bytes, run_chip_s: float = 0.0) -> float:
    """The normative deadline (s) of a request's *final* reply, from its payload (see the
    opcode sections): WRITE_VERIFY from its schedule and count, WAIT from its duration, RUN
    from ``run_chip_s`` (n x (steps x TIME_STEP + LATENCY), which the host knows); other
    opcodes ACK_S.  Malformed payloads get ACK_S (the board refuses them at once)."""
    from firmware_iface.records import PayloadError, unpack

    try:
        if opcode == Opcode.WRITE_VERIFY:
            r, off = unpack("SCHEDULE", payload)
            c, _ = unpack("COUNT", payload, off)
            return (int(c["count"]) * (int(r["max_pulses"]) + 2)
                    * (int(r["width_ns"]) * 1e-9 + int(r["read_averages"]) * READ_TIME_S) + SLACK_S)
        if opcode == Opcode.WAIT:
            return int(unpack("WAIT", payload)[0]["duration_ns"]) * 1e-9 + SLACK_S
        if opcode == Opcode.RUN:
            return run_chip_s + SLACK_S
    except PayloadError:
        pass
    return ACK_S


LINK_LAYER = f"""\
- **UART** (real board): {UART_BAUD:,} baud, 8 data bits, no parity, 1 stop bit (8N1), no flow
  control (neither RTS/CTS nor XON/XOFF). Outside bulk mode the host has at most one request in
  flight, so a receive buffer of one maximum frame suffices on either side; in bulk mode the
  pieces of a round are in flight together and the board consumes them at line rate, in order
  (section Bulk mode). Other transports (TCP, a
  pseudo-terminal, the in-process simulator) carry the same byte stream unchanged.
- **Delimiter**: 0x00 ends every frame and never occurs inside one (COBS). A receiver collects
  bytes up to the next 0x00 and decodes them as one frame; an empty run (two 0x00 in a row) is
  ignored. A run that fails COBS, CRC, length or reserved-field checks is dropped and answered
  BAD_FRAME -- but within one burst of bytes (bytes that follow each other without a pause: on
  a UART the next byte within two byte times, on other transports the bytes of one read), once
  a board has answered a bad run (BAD_FRAME or DATA_CRC) it answers no further bad run until a
  valid frame arrives: a burst of garbage (such as the raw bytes of a BULK_PUT whose frame was
  lost) gets one BAD_FRAME, while a host's retry, which follows a pause, is answered again.
  Every bad run is still counted in STATUS.bad_frames. A sender may put a 0x00 before a frame to flush a half-received run.
  The one exception to "0x00 ends every frame" is bulk mode (section Bulk mode): raw bytes
  that a BULK_PUT request or a BULK_GET reply announces follow its frame unstuffed.
- **Sizes**: header {HEADER.size} bytes; payload at most {MAX_PAYLOAD} bytes (`max_payload` of
  HELLO/INFO may be smaller: the host never exceeds the board's value); a wire frame (COBS
  overhead and delimiter included) at most {MAX_WIRE_FRAME} bytes. A receiver that buffers more
  than that without seeing a 0x00 discards the buffer (counted in STATUS.bad_frames) and
  answers BAD_FRAME.
- **Byte order**: all integers little-endian; records packed, `_pad` fields zero.
- **Response time**: a board starts the reply to every request (or BUSY, see below) within
  {ACK_S:g} s of the request's last byte, plus the reply's own transfer time.
"""

SESSIONS = """\
- **Opening**: the host opens one session per connection with HELLO: header `session` = a
  random non-zero 32-bit id, `seq` = 0, empty payload. The board makes it the current session,
  empties its reply cache and answers with the HELLO record. Session 0 means "none": the state
  after power-up, a reboot or a watchdog reset. HELLO with session 0 is answered OUT_OF_RANGE.
- **Membership**: every request other than HELLO must carry the current session; otherwise the
  board answers NO_SESSION and executes nothing. A host receiving NO_SESSION opens a new
  session and sends the command again under it (the board did not execute the refused frame).
  A second host's HELLO therefore ends the first host's session: one host at a time.
- **Binding**: every reply copies the request's `opcode`, `seq` and `session` and sets `echo` to
  the request's CRC-32 trailer. The host accepts only a response frame whose session, seq,
  opcode and echo all match its pending request; it discards any other frame and keeps waiting
  until the request's deadline.
- **Numbering**: within a session the host numbers its requests `seq` = 1, 2, 3 ... (mod
  65536). A seq is *after* another when `0 < (seq - other) mod 65536 < 32768` (RFC 1982).
- **Reply cache**: the board keeps the reply to the most recent sequenced request (HELLO
  included). A request is handled by the first rule that applies:
  1. same seq as the cached request and *identical* (same session, seq, opcode, length and
     CRC-32): a retry; the board sends the cached reply again and executes nothing;
  2. same seq, different frame: SEQ_REUSED; nothing executed, cache unchanged;
  3. a seq not after the cached one: STALE_SEQ (a late duplicate); nothing executed, cache
     unchanged;
  4. otherwise the request is executed and its reply replaces the cache entry.
  Refusals (NO_SESSION, SEQ_REUSED, STALE_SEQ, BUSY for another request) are never cached.
- **STATUS**, **BULK_PUT** and **BULK_GET** are not sequenced: each is executed every time it
  arrives in the current session, whatever its seq, also while a job runs; its reply is never
  cached and the cache is left as it was. The host still numbers them from the same counter
  (so each reply is bound to its request), and at most 16,384 unsequenced requests go between
  two sequenced ones, so the next sequenced seq is still *after* the cached one.
- **Retries** (host): after a timeout or a BAD_FRAME the host resends the identical frame; it
  never reuses a seq for other content. So a duplicated, delayed or retried PULSE,
  WRITE_VERIFY or RUN acts at most once.
"""

BUSY = f"""\
- A board may acknowledge a long job (WRITE_VERIFY, RUN, WAIT) that is still running after
  {ACK_S:g} s with a reply of status BUSY (the request's opcode, seq, session and echo, payload
  a short text). The job continues; its final reply goes to the reply cache when it ends.
- While a job runs the board answers STATUS with `state` = 1; the identical retry of the job's
  request with BUSY again; any other sequenced request with BUSY, without executing it; HELLO
  with BUSY.
- The host, on BUSY, polls STATUS with exponential back-off (from 5 ms, doubling, at most
  0.25 s between polls). When `state` is 0 it resends the identical job frame and receives the
  final reply from the cache. It gives up with a timeout at the job's deadline (below).
- A board that never leaves BUSY is faulty: the host reports a timeout at the deadline.
"""

STATUS_FIELDS = """\
STATUS record: `state` 0 idle, 1 a job is running, 2 error; `last_error` the status code of the
most recent non-OK reply (0 if none since power-up or RESET); `chip_ns` the chip clock (ns, never
reset): it advances only while the array works (reads, pulses, runs, waits), by exactly the
`chip_ns` each DONE reports for its command, and not while idle; `frames_rx` requests received; `bad_frames` runs dropped by the frame layer (COBS, CRC,
length, version, oversize); `duplicates` retries answered from the reply cache; `samples_stored`
input samples in board memory; `outputs_ready` samples with stored results. RESET clears
`last_error`, `samples_stored` and `outputs_ready`; the other counters count from power-up.
"""

WRITE_VERIFY = f"""\
```text
inputs   SCHEDULE s (all integers as on the wire: mV, ns, uV, nS), TARGET list (row, col, target_ns)
helpers  nS(x)      = floor(x * 1e9 + 0.5) in IEEE-754 double          -- S -> integer nS
         measure(c) = the value READ_CELLS would report for cell c with v_read_uv = s.v_read_uv and
                      averages = s.read_averages (float32 siemens); g_ns = nS(double(measure(c)))
constants STUCK_WINDOW_NS = 1000, STUCK_PULSES = 12
per cell c (all cells advance in lock-step iterations; within an iteration the board reads every
            unfinished cell, then applies the pulses the iteration decided, in target order):
  pulses = 0, dir = 0, v_mv = 0, at_max = 0, g_at_max = 0, gmin = gmax = 0, pending = false
  loop:
    g_ns = nS(measure(c));  report_g = measure(c)             -- CELL_RESULT.g_s = last read
    err = g_ns - target_ns;  inside = |err| <= s.tolerance_ns  -- inclusive window, integers
    if pulses == 0: gmin = gmax = g_ns else: gmin = min(gmin, g_ns); gmax = max(gmax, g_ns)
    if inside and (pending or not s.flags.CONFIRM_READ): SUCCESS; stop
    if pending and not inside: CONFIRM_FAILED = true             -- flag stays; loop goes on
    pending = inside                                             -- inside once: read again
    if inside: next iteration (no pulse)
    exhausted = pulses >= s.max_pulses
    stuck_at_max = at_max >= STUCK_PULSES and |g_ns - g_at_max| <= STUCK_WINDOW_NS
    if exhausted or stuck_at_max:
        STUCK = stuck_at_max or (gmax - gmin <= STUCK_WINDOW_NS); stop   -- not SUCCESS
    d = SET (+1) if err < 0 else RESET (-1)
    (start, step, max, wl) = (s.set_start_mv, s.set_step_mv, s.set_max_mv, s.set_wl_mv) if d = SET
                        else (s.reset_start_mv, s.reset_step_mv, s.reset_max_mv, s.reset_wl_mv)
    v_mv = min(v_mv + step, max) if d == dir else start          -- ramp; restart on a turn
    if v_mv >= max: (if not (d == dir and at_max > 0): g_at_max = g_ns); at_max += 1
    else: at_max = 0
    dir = d; pulses += 1
    pulse: SET   -> kind 1, v_bl = v_mv, v_wl = wl, v_sl = 0
           RESET -> kind 2, v_bl = 0, v_wl = wl, v_sl = v_mv ; width = s.width_ns
result   flags bit0 SUCCESS, bit1 STUCK, bit2 CONFIRM_FAILED; pulses = pulses applied (reads
         and the confirm read are not counted); g_s = report_g (the last read).
```
Host mode runs the same algorithm with READ_CELLS and PULSE round trips, converting its float
targets with nS(); host and board give bit-identical per-cell results. Before any pulse the
board checks the whole request (see WRITE_VERIFY below): nothing is applied on a refusal.
"""


@dataclass(frozen=True)
class OpcodeSpec:
    """Normative behaviour of one opcode."""

    pre: str
    """Preconditions (what must hold for the command to execute)."""
    errors: tuple[tuple[str, str], ...]
    """(violation, status) pairs; checks happen before any effect."""
    effects: str
    reply: str
    deadline: str
    idempotent: str


_SESSION = ("no session / not the current session", "NO_SESSION")
_SIZE = ("payload size or layout wrong", "BAD_PAYLOAD")
_EMPTY = ("payload not empty", "BAD_PAYLOAD")
_SHORT = f"within {ACK_S:g} s"

OPCODE_SPEC: dict[Opcode, OpcodeSpec] = {
    Opcode.HELLO: OpcodeSpec(
        "header session != 0; no job running", (_EMPTY, ("session 0", "OUT_OF_RANGE"), ("a job is running", "BUSY")),
        "current session := header session; reply cache emptied; registers, memory and array untouched",
        "HELLO record", _SHORT, "yes (the identical HELLO again is answered from the cache)"),
    Opcode.PING: OpcodeSpec(
        "session open", (_SESSION, (f"payload over {MAX_PING} bytes", "BAD_PAYLOAD")),
        "none", "the request payload, unchanged", _SHORT, "yes"),
    Opcode.GET_INFO: OpcodeSpec(
        "session open", (_SESSION, _EMPTY), "none",
        "INFO record then `levels` x f32 nominal conductance levels (S), ascending; `protocol` = 2",
        _SHORT, "yes"),
    Opcode.REG_READ: OpcodeSpec(
        "session open", (_SESSION, _SIZE, ("unknown register id", "OUT_OF_RANGE")), "none",
        "REG record: the register id asked for and its code in force", _SHORT, "yes"),
    Opcode.REG_WRITE: OpcodeSpec(
        "session open; register writable; min code <= code <= max code (register table)",
        (_SESSION, _SIZE, ("unknown register id", "OUT_OF_RANGE"), ("read-only register", "OUT_OF_RANGE"),
         ("code outside [min, max]", "OUT_OF_RANGE")),
        "the register takes the code; the DAC setting applies to every later command",
        "REG record: the register id and the code now in force", _SHORT, "yes"),
    Opcode.READ_CELLS: OpcodeSpec(
        "session open; 0 < v_read_uv <= 1,000,000 (1 V); averages >= 1; every addressed cell inside the "
        "array (LIST: each CELL; ROW: `row` < rows)",
        (_SESSION, _SIZE, ("unknown mode", "BAD_PAYLOAD"),
         ("v_read_uv = 0 or > 1,000,000, averages = 0 or > LIMITS.max_averages", "OUT_OF_RANGE"),
         ("LIST of more than LIMITS.max_read_cells cells", "OUT_OF_RANGE"),
         ("cell or row outside the array", "OUT_OF_RANGE"), ("reply larger than max_payload", "NO_MEMORY")),
        "reads at `v_read_uv` (the READ_REQ field, not the V_READ register) averaged `averages` times; "
        "conductances unchanged",
        "f32 conductances (S): LIST in request order, ROW all columns of the row, ARRAY row-major",
        _SHORT, "yes"),
    Opcode.PULSE: OpcodeSpec(
        "session open; `count` PULSE records follow; for every pulse: kind 1 or 2, cell inside the array, "
        "v_bl/v_wl/v_sl <= HELLO.v_max_mv, width_ns <= HELLO.width_max_ns",
        (_SESSION, _SIZE, ("more than LIMITS.max_pulse_records pulses", "OUT_OF_RANGE"),
         ("kind not 1 or 2", "OUT_OF_RANGE"), ("voltage or width beyond the board maxima", "OUT_OF_RANGE"),
         ("cell outside the array", "OUT_OF_RANGE")),
        "the whole batch is checked first (one bad pulse: nothing applied), then the pulses are applied "
        "in order; SET drives the bit line, RESET the source line",
        "DONE record: count = pulses applied, chip_ns = chip time taken", _SHORT,
        "no (a retry is answered from the reply cache; the same pulses under a new seq act again)"),
    Opcode.WRITE_VERIFY: OpcodeSpec(
        "session open; schedule valid: every mV/ns/uV/nS field > 0, start <= max for SET and RESET, "
        "max voltages and word-line voltages <= HELLO.v_max_mv, width_ns <= HELLO.width_max_ns, "
        "v_read_uv <= 1,000,000; every target cell inside the array",
        (_SESSION, _SIZE, ("schedule field zero or start > max", "BAD_PAYLOAD"),
         ("schedule voltage / width / read voltage beyond the board maxima", "OUT_OF_RANGE"),
         ("more than LIMITS.max_wv_cells targets, max_pulses > LIMITS.max_pulses, read_averages > "
          "LIMITS.max_averages", "OUT_OF_RANGE"),
         ("cell outside the array", "OUT_OF_RANGE")),
        "runs the normative write-verify algorithm (section Write-verify) on all targets",
        "DONE record (count = targets, chip_ns) then one CELL_RESULT per target, in request order",
        "BUSY or final reply within 0.5 s; final result within count x (max_pulses + 2) x (width + "
        f"read_averages x {READ_TIME_S * 1e6:g} us) + {SLACK_S:g} s",
        "no (retry answered from the cache)"),
    Opcode.UPLOAD_SPIKES: OpcodeSpec(
        f"session open; rows = INFO.rows; 1 <= steps <= {MAX_STEPS}; slot + n <= INFO.sample_slots",
        (_SESSION, _SIZE, ("bad SAMPLE encoding / AER event outside the sample", "BAD_PAYLOAD"),
         ("rows != INFO.rows or steps > max_steps", "OUT_OF_RANGE"), ("slot + n > sample_slots", "NO_MEMORY"),
         ("n x steps x rows bits would exceed LIMITS.sample_memory_bits in use", "NO_MEMORY"),
         ("n larger than the payload can hold", "BAD_PAYLOAD")),
        "stores the n samples in slots slot .. slot+n-1 (replacing what was there) and discards the stored "
        "results of those slots; the run length of a sample is its `steps` (the N_STEPS register is not used)",
        "COUNT record: samples stored", _SHORT, "yes (the same upload stores the same data)"),
    Opcode.RUN: OpcodeSpec(
        "session open; every slot in slot .. slot+n-1 holds an input sample",
        (_SESSION, _SIZE, ("slot + n > sample_slots", "OUT_OF_RANGE"), ("a slot without input", "NOT_READY")),
        "runs the samples back to back; every sample starts from the rest state (neuron potentials, PSP "
        "and refractory state zero); the result of each sample replaces its slot's stored result",
        "DONE record: count = n, chip_ns = n x (steps x TIME_STEP + LATENCY)",
        f"BUSY or final reply within {ACK_S:g} s; final within the chip time + {SLACK_S:g} s",
        "no (retry answered from the cache)"),
    Opcode.READ_OUTPUT: OpcodeSpec(
        "session open; every slot in slot .. slot+n-1 holds a result; all n results have the same steps",
        (_SESSION, _SIZE, ("slot + n > sample_slots", "OUT_OF_RANGE"), ("a slot without result", "NOT_READY"),
         ("results of different lengths", "OUT_OF_RANGE"),
         ("reply larger than max_payload", "NO_MEMORY")),
        "none",
        "OUTPUT record (steps = the samples' steps; N_STEPS when n = 0), n x neurons u16 spike counts "
        "(cannot saturate: steps <= 4096), then the events as u32 `step << 8 | neuron`, grouped by "
        "sample, within a sample ordered by step then neuron",
        _SHORT, "yes"),
    Opcode.STATUS: OpcodeSpec(
        "session open (not sequenced, see Sessions)", (_SESSION, _EMPTY), "none", "STATUS record (below)",
        _SHORT, "yes"),
    Opcode.RESET: OpcodeSpec(
        "session open; no job running", (_SESSION, _EMPTY, ("a job is running", "BUSY")),
        "registers to their defaults; sample memory, stored results, a staged transfer and the kept reply "
        "of the last transfer cleared; `last_error` cleared; "
        "array conductances (non-volatile), the chip clock and the session are kept",
        "empty", _SHORT, "yes"),
    Opcode.WAIT: OpcodeSpec(
        f"session open; duration_ns <= {MAX_WAIT_NS}",
        (_SESSION, _SIZE, (f"duration_ns > {MAX_WAIT_NS}", "OUT_OF_RANGE"),
         ("the chip clock would pass LIMITS.max_chip_ns", "OUT_OF_RANGE")),
        "lets chip time pass with the array idle (retention)",
        "DONE record: count 0, chip_ns = duration_ns",
        f"BUSY or final reply within {ACK_S:g} s; final within duration + {SLACK_S:g} s",
        "no (retry answered from the cache)"),
    Opcode.SIM_QUERY: OpcodeSpec(
        "session open; simulator only", (_SESSION, ("a real board, or an unknown query", "UNSUPPORTED")),
        "none", "UTF-8 JSON", _SHORT, "yes"),
}

_LIMITS = "GET_LIMITS"
OPCODE_SPEC.update({
    Opcode.STAGE: OpcodeSpec(
        "session open; capability BOUNDED; id != 0; the target opcode is stageable (not STAGE, COMMIT, FETCH, "
        "HELLO, STATUS); total <= LIMITS.max_payload; piece <= LIMITS.max_chunk; offset + piece <= total",
        (_SESSION, _SIZE, ("id 0, target opcode not stageable", "OUT_OF_RANGE"),
         ("total > max_payload, piece > max_chunk, piece beyond total", "OUT_OF_RANGE")),
        "a new id (or other opcode / total) starts a new staging buffer, dropping the previous one; the piece "
        "is stored at `offset`", "COUNT record: bytes of the transfer received so far", _SHORT,
        "yes (the same piece again stores the same bytes)"),
    Opcode.COMMIT: OpcodeSpec(
        "session open; all `total` bytes of transfer `id` staged as `opcode`, or `id` is the last committed "
        "transfer", (_SESSION, _SIZE, ("transfer not (completely) staged", "NOT_READY")),
        "runs the staged payload as `opcode` exactly as if it had arrived in one frame (all its checks apply) "
        "and keeps the reply; a COMMIT of the last committed id runs nothing and answers the kept reply again",
        "RESULT record (the command's status and reply length) then the first min(length, max_chunk) bytes "
        "of its reply payload", "the deadline of the target opcode",
        "yes: at most one execution per transfer id, whatever the seq"),
    Opcode.FETCH: OpcodeSpec(
        "session open; `id` is the last committed transfer; length <= max_chunk; offset + length <= the kept "
        "reply's length", (_SESSION, _SIZE, ("no kept reply of this id", "NOT_READY"),
                           ("length > max_chunk or beyond the kept reply", "OUT_OF_RANGE")),
        "none", "`length` bytes of the kept reply payload from `offset`", _SHORT, "yes"),
    Opcode.GET_LIMITS: OpcodeSpec(
        "session open; capability BOUNDED", (_SESSION, _EMPTY), "none", "LIMITS record", _SHORT, "yes"),
    Opcode.BULK_PUT: OpcodeSpec(
        "session open (not sequenced); capability BULK; the frame's payload is one BULK record and its raw "
        "block arrived intact; id != 0; the target `opcode` is stageable (as STAGE); total <= "
        "LIMITS.max_payload; offset + nbytes <= total",
        (_SESSION, ("raw block failed its CRC-32 or stopped for RAW_IDLE_S", "DATA_CRC"), _SIZE,
         ("id 0, target opcode not stageable", "OUT_OF_RANGE"),
         ("total > max_payload, piece beyond total", "OUT_OF_RANGE")),
        "exactly as STAGE of the raw block at `offset` (same staging buffer: STAGE and BULK_PUT pieces of "
        "one transfer may be mixed); there is no max_chunk limit",
        "COUNT record: bytes of the transfer received so far", _SHORT,
        "yes (the same piece again stores the same bytes)"),
    Opcode.BULK_GET: OpcodeSpec(
        "session open (not sequenced); capability BULK; `id` is the last committed transfer; length <= "
        "LIMITS.max_payload; offset + length <= the kept reply's length",
        (_SESSION, _SIZE, ("no kept reply of this id", "NOT_READY"),
         ("length > max_payload or beyond the kept reply", "OUT_OF_RANGE")),
        "none",
        "BULK record (`id`, `opcode` 0, `total` = the kept reply's length, `offset`, `nbytes` = `length`, "
        "`crc` of the data) as the frame's payload; the `length` bytes of the kept reply from `offset` follow "
        "the frame as a raw block, then 0x00", _SHORT, "yes"),
})

BOUNDED_FRAMES = """\
- **Why**: the chance that a frame crosses a faulty link intact falls with its length; a board
  with capability BOUNDED (0x10) therefore takes large requests and returns large replies in
  pieces of at most `LIMITS.max_chunk` bytes (1024 on the virtual board), each its own frame.
- **Transfer**: the host picks a random non-zero 32-bit `id`; sends the request payload with
  STAGE pieces (offset, total, target opcode), then COMMIT; the board runs the assembled payload
  as the target opcode (all of that opcode's checks apply) and keeps the reply; the COMMIT reply
  is a RESULT record (status, length) plus the first piece; the host FETCHes the rest. The host
  uses a transfer whenever the request, or the reply it may get, exceeds the piece size.
- **Retries**: every frame of a transfer is retried on its own (the identical frame, answered
  from the reply cache); if all of a frame's attempts fail, the host sends it again under a new
  seq after a back-off (1 ms, doubling, at most 0.1 s): STAGE and FETCH are idempotent and a
  COMMIT runs at most once per transfer id. A command's retry budget is `retries` (station
  `chip.retries`, default 5) re-sends per frame, pooled over all its frames.
- **Corruption**: a reply that arrives but fails the frame checks is reported as corrupted,
  never as "no reply".
- **Limits**: GET_LIMITS returns every limit the board enforces (LIMITS record): sample steps,
  sample slots and sample memory, write-verify pulses per cell, cells per WRITE_VERIFY and per
  READ_CELLS, pulses per PULSE, read averages, the longest WAIT, the chip-clock ceiling, piece
  and payload sizes, and the bound on the firmware's own memory. Every request that names a
  size beyond one is refused (OUT_OF_RANGE, NO_MEMORY for sample memory) before any work or
  allocation. The host refuses a schedule beyond the board's `max_pulses` as it refuses one
  beyond the station's `max_pulses_per_cell`.
- **Fault budget** (the rates at which every command completes with the default settings,
  retries 5 and timeout 2 s): bit-error rate up to 1e-5 per bit with up to 0.5 % of chunks
  dropped in each direction -- `chip program` of the whole array and `infer --limit 16`
  complete with results bit-identical to a clean link (tests/test_fault_budget.py, 10 link
  seeds). Measured beyond it (benchmarks/bench_fuzz.py, docs/BENCHMARKS.md, 10 seeds per
  point): every point of BER {0, 1e-6, 1e-5, 3e-5, 1e-4} x drop {0, 0.5 %, 2 %} completed with
  the defaults, results identical, at 0.9-1.4 retries per command at 1e-5 and about 13 at 1e-4
  (round trips 2.2 x the clean link's). At 1e-4 / 2 % the CI test grants `chip.retries` = 20.
"""

BULK_MODE = f"""\
- **Why**: COBS stuffing costs the sender a pass over every byte and bounded frames cost one
  round trip per `max_chunk` bytes; a board with capability BULK (0x20, besides BOUNDED) moves
  the pieces of a bounded transfer as *raw blocks*: unstuffed, in pieces of any size up to
  `max_payload`, and pipelined (the host does not wait for one piece's reply before sending
  the next).
- **Raw block**: a BULK_PUT request, and a BULK_GET reply of status OK, carry a BULK record
  (24 bytes: `id` u32, `opcode` u8, 3 pad bytes, `total` u32, `offset` u32, `nbytes` u32, `crc`
  u32) as their whole payload. On the wire the frame (COBS, 0x00) is followed by exactly
  `nbytes` raw bytes -- which may contain 0x00 -- and one 0x00:

      COBS(header || BULK record || crc32) 0x00 raw[nbytes] 0x00

  The receiver, after decoding such a frame (its own CRC-32 valid), takes the next `nbytes`
  bytes as the raw block without looking for delimiters, then compares their CRC-32 (zlib/IEEE,
  as the frame trailer) with `crc`. The trailing 0x00 is an empty run (ignored). A frame whose
  payload is not a 24-byte BULK record, or announces more than `max_payload` bytes, announces
  no raw block (its bytes are parsed as frames; the command answers BAD_PAYLOAD).
- **Resynchronisation**: when the raw block fails its CRC-32, or no byte of it arrives for
  {RAW_IDLE_S:g} s (RAW_IDLE_S), the receiver drops it and searches its bytes for delimiters
  again from the first byte it had taken as raw, as ordinary runs -- so a frame that a
  cut-short block swallowed is still found. A board answers such a BULK_PUT with DATA_CRC
  (bound to the request: opcode, seq, session, echo) and stores nothing; it does not answer the
  bad runs found in the dropped block (the burst rule of the Link layer). A frame whose own CRC
  fails announces nothing: its raw bytes are hunted as garbage (one BAD_FRAME).
- **Upload**: the host sends the request of a transfer as BULK_PUT pieces (any split; the
  virtual board's host uses up to 2 MiB), all of them back to back, then the transfer's COMMIT
  (sequenced, a new seq each round) in the same burst. The board answers every request in
  the order received, so when the COMMIT reply arrives every piece has been answered or was
  lost, and the COMMIT ran only if every byte was staged: RESULT as for bounded frames; when
  a byte of the transfer is missing the board answers NOT_READY at once (it never waits for
  pieces) and runs nothing. Each piece answered COUNT is stored; a piece answered DATA_CRC or
  not at all is sent again (the host splits it in four, down to 1 KiB, so a noisy link
  converges) in the next round, closed by a new COMMIT. A COMMIT answered BUSY (a long job
  accepted), or not at all, is settled as for bounded frames (a COMMIT of a transfer that
  already ran returns the kept result). A host may also close the round with a STATUS and
  send COMMIT after it (one round trip more).
- **Readout**: after COMMIT (its RESULT holds the first `max_chunk` bytes) the host asks for
  the rest with BULK_GET requests, back to back, then one STATUS; a piece whose reply is
  missing or whose raw block fails its CRC is asked for again, smaller.
- **Budget**: one transfer may lose at most `retries` pieces per KiB; a round in which no
  piece got through is a dead round, and more than `retries` dead rounds in a row end the
  transfer with a timeout. A round waits for the reply to its closing STATUS (or COMMIT) until no byte has arrived for
  the host's timeout (so a slow link is not mistaken for a dead one); a raw block still
  incomplete then is dropped and its bytes searched as above. A board that reboots during an upload (NO_SESSION) gets a new
  session and the whole upload again. A transfer therefore completes bit-identical or fails
  with an error; it never returns partial data.
- **Compatibility**: a host that sees no BULK bit uses STAGE / FETCH; a board that has the bit
  still serves STAGE / FETCH.
"""

GENERAL_STATUS = """\
Any request: a response frame sent to the board (flags bit 0 set) is answered BAD_PAYLOAD; an
opcode the board does not implement UNKNOWN_OPCODE; a firmware fault INTERNAL (payload: text).
Non-OK replies may carry a short UTF-8 explanation as payload. The PARTIAL_SUM capability bit is
reserved: no opcode uses it in protocol 2 and boards leave it 0.
"""
