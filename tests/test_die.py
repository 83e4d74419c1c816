"""The die file (issue 19): a simulated chip that remembers, as non-volatile RRAM does.

Must hold:
  1. default station: ``chip program`` then ``chip read`` (separate processes) reads back the
     programmed map; ``sim die reset`` then ``chip read`` shows a fresh die;
  2. ``sim serve --die F`` restarted and ``pesim://?die=F`` in two processes keep the state;
     SIGKILL mid-command leaves the die as before or after that command, never in between;
  3. a die loaded 1e5 s after its save shows the model's closed-form relaxation / drift;
     ``--freeze`` gives bit-identical reads;
  4. a second simulator on one die refuses with one line, exit 2.
Plus: wear accumulates across sessions; the endurance model follows its documented law.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.simbench import SimBench
from drivers.pechip import PEChip
from sim_backend.chip import VirtualChip
from sim_backend.die import OpenDie, encode_die, read_die, write_die_atomic

ROOT = Path(__file__).resolve().parents[1]

# The model's constants as documented in docs/chip_model.md ("typical" column), not imported.
DRIFT_M = -0.00089          # relative mean shift per ln(1 + t / 1 s)
SIGMA_1S = 1.8e-6           # relaxation spread after 1 s (S)
T0 = 1e-4                   # relaxation time origin (s)
G_MIN, G_CELL_MAX = 0.3e-6, 200e-6


def cli(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def py(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def cells_of(path: Path) -> dict[str, np.ndarray]:
    """The per-cell arrays of a die file, read with h5py (independent of the loader)."""
    with h5py.File(path, "r") as h5:
        return {k: h5["cells"][k][()] for k in h5["cells"]}


def same_cells(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def program_some(chip: VirtualChip, n_rows: int = 32) -> None:
    """A few SET pulses on the first rows (real pulses: the relaxation direction is drawn)."""
    rr, cc = np.meshgrid(np.arange(n_rows), np.arange(chip.columns), indexing="ij")
    rows, cols = np.repeat(rr.ravel(), 6), np.repeat(cc.ravel(), 6)
    n = rows.size
    chip.pulse(np.ones(n), rows, cols, np.full(n, 2.2), np.full(n, 1.2), np.zeros(n), np.full(n, 1e-6))


# --- 1. default station ------------------------------------------------------------------------
def test_default_station_program_then_read_and_reset(tmp_path):
    w = np.random.default_rng(5).uniform(-2.5, 2.5, (64, 12))
    np.save(tmp_path / "w.npy", w)
    r = cli("chip", "program", "--weights", str(tmp_path / "w.npy"), "--out", str(tmp_path / "p.h5"),
            "--tolerance-us", "5", "--json")
    assert r.returncode == 0, r.stderr
    r = cli("chip", "read", "--out", str(tmp_path / "r.h5"), "--averages", "16", "--json")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "p.h5") as p, h5py.File(tmp_path / "r.h5") as rd:
        readback, target = p["maps/readback_s"][()], p["maps/target_s"][()]
        g = rd["maps/mean_s"][()]
    # the later read sees the programmed map: within the program's own 5 uS tolerance of its read-back
    assert np.sqrt(np.mean((g - readback) ** 2)) < 5e-6
    assert np.quantile(np.abs(g - readback), 0.99) < 5e-6
    assert np.corrcoef(g.ravel(), target.ravel())[0, 1] > 0.9
    info = json.loads(cli("chip", "info", "--json").stdout)["die"]
    assert info["persisted"] and info["programmed"] and info["total_pulses"] > 3072
    assert info["seed"] == 1 and 0 < info["age_since_programming_s"] < 600   # seconds since the program
    assert Path(info["file"]).parent == Path(os.environ["SNNBENCH_DIE_HOME"]).resolve()

    r = cli("sim", "die", "reset", "--json")
    assert r.returncode == 0, r.stderr
    r = cli("chip", "read", "--out", str(tmp_path / "r2.h5"), "--json")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "r2.h5") as rd:
        fresh = rd["maps/mean_s"][()]
    # a fresh (formed, reset) die: every cell below the 4 uS stuck-off limit but the stuck-on ones,
    # which sit at 160-200 uS (docs/chip_model.md); nothing of the programmed map is left
    low = fresh < 4e-6
    assert low.mean() > 0.98
    assert np.all(fresh[~low] > 150e-6)
    assert abs(np.corrcoef(fresh.ravel(), target.ravel())[0, 1]) < 0.2
    info = json.loads(cli("chip", "info", "--json").stdout)["die"]
    assert info["total_pulses"] == 0 and not info["programmed"]


def test_pesim_without_die_is_a_fresh_die_and_says_so():
    r = cli("chip", "info", "--chip", "pesim://?seed=4", "--json")
    assert r.returncode == 0, r.stderr
    die = json.loads(r.stdout)["die"]
    assert die["persisted"] is False and die["summary"] == "fresh die (not persisted)"
    assert not list(Path(os.environ["SNNBENCH_DIE_HOME"]).iterdir())


def test_station_file_names_its_die(tmp_path):
    st = tmp_path / "station.toml"
    st.write_text('[chip]\nurl = "sim"\nseed = 21\ndie = "chips/mine.h5"\n')
    (tmp_path / "chips").mkdir()
    r = cli("--station", str(st), "chip", "info", "--json")
    assert r.returncode == 0, r.stderr
    die = json.loads(r.stdout)["die"]
    assert die["file"] == str((tmp_path / "chips" / "mine.h5").resolve()) and die["seed"] == 21
    st.write_text('[chip]\nurl = "sim"\n')                       # no die: fresh, and said so
    die = json.loads(cli("--station", str(st), "chip", "info", "--json").stdout)["die"]
    assert die["persisted"] is False and die["summary"] == "fresh die (not persisted)"


def test_sim_die_new_use_info(tmp_path):
    r = cli("sim", "die", "new", "--seed", "7", "--fidelity", "ideal", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(cli("chip", "info", "--json").stdout)["die"]["seed"] == 7
    other = tmp_path / "other.h5"
    assert cli("sim", "die", "new", "--seed", "3", "--out", str(other)).returncode == 0
    assert json.loads(cli("chip", "info", "--json").stdout)["die"]["seed"] == 3
    r = cli("sim", "die", "new", "--out", str(other))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "exists" in r.stderr
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    r = cli("sim", "die", "use", str(tmp_path / "junk.h5"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "junk.h5" in r.stderr
    assert cli("sim", "die", "use", "default").returncode == 0
    info = json.loads(cli("sim", "die", "info", "--json").stdout)
    assert info["seed"] == 7 and info["current"] and info["fidelity"] == "ideal"


# --- 2. restarts and kills -------------------------------------------------------------------------
def test_sim_serve_restart_keeps_state(tmp_path):
    die = tmp_path / "d.h5"
    with SimBench(seed=2, instruments=False, die=die, freeze=True) as sim, PEChip(sim.chip_url) as chip:
        rows, cols = np.arange(40), np.arange(40) % 24
        chip.pulse(np.ones(40, int), rows, cols, 2.4, 1.4, 0.0, 1e-6)
        chip.write_register("V_READ", 0.25)
        g1 = np.array(chip.sim_query("conductances"))
        before = chip.read_array(averages=4)
    with SimBench(seed=9, instruments=False, die=die, freeze=True) as sim, PEChip(sim.chip_url) as chip:
        assert sim.served["seed"] == 2                         # the die's seed, not --seed
        g2 = np.array(chip.sim_query("conductances"))
        assert chip.read_register("V_READ") == pytest.approx(0.25, abs=1e-3)   # the board kept it
        info = chip.sim_query("die")
    assert np.array_equal(g1, g2)                               # frozen: exactly the same chip
    assert np.abs(g1 - np.array(VirtualChip(chip_seed=2).conductances())).max() > 20e-6
    assert info["total_pulses"] == 40 and info["programmed"]
    assert before.shape == (128, 24)


def test_pesim_two_processes_keep_state(tmp_path):
    die = tmp_path / "d.h5"
    url = f"pesim://?seed=5&die={die}"
    r = py(f"""
        import json, numpy as np, sim_backend
        from drivers.pechip import PEChip
        with PEChip({url!r}) as c:
            c.pulse(np.ones(24, int), np.zeros(24, int), np.arange(24), 2.4, 1.4, 0.0, 1e-6)
            print(json.dumps(c.read_row(0, averages=16).tolist()))
    """)
    assert r.returncode == 0, r.stderr
    first = np.array(json.loads(r.stdout))
    r = py(f"""
        import json, sim_backend
        from drivers.pechip import PEChip
        with PEChip({url!r}) as c:
            print(json.dumps([c.read_row(0, averages=16).tolist(), c.sim_query("die")]))
    """)
    assert r.returncode == 0, r.stderr
    second, info = json.loads(r.stdout)
    assert first.mean() > 10e-6                                 # really programmed (fresh: < 4 uS)
    # the same cells, moved only by the relaxation over the time between the two processes
    sigma = SIGMA_1S * math.log1p((info["elapsed_on_load_s"] + 1.0) / T0) / math.log1p(1.0 / T0)
    diff = np.array(second) - first
    assert np.sqrt(np.mean(diff ** 2)) < 1.5 * sigma + 0.5e-6 and np.abs(diff).max() < 5 * sigma
    assert info["total_pulses"] == 24 and info["elapsed_on_load_s"] > 0


def _state_with(g_value: float) -> dict:
    chip = VirtualChip(chip_seed=3, fidelity="typical")
    chip.set_conductances(np.full((128, 24), g_value))
    return chip.state()


def test_sigkill_during_saves_leaves_one_whole_die(tmp_path):
    """A process saving two alternating states in a loop, killed at random instants: the die
    always loads and holds exactly one of the two."""
    die = tmp_path / "d.h5"
    states = {10e-6: _state_with(10e-6), 90e-6: _state_with(90e-6)}
    write_die_atomic(die, encode_die(states[10e-6], {}, saved_utc=0.0, created_utc=0.0))
    expect = [{k: np.asarray(v) for k, v in s["cells"].items()} for s in states.values()]
    code = f"""
        import numpy as np, sys
        from sim_backend.chip import VirtualChip
        from sim_backend.die import encode_die, write_die_atomic
        blobs = []
        for g in (10e-6, 90e-6):
            c = VirtualChip(chip_seed=3, fidelity="typical"); c.set_conductances(np.full((128, 24), g))
            blobs.append(encode_die(c.state(), {{}}, saved_utc=0.0, created_utc=0.0))
        print("ready", flush=True)
        i = 0
        while True:
            write_die_atomic({str(die)!r}, blobs[i % 2]); i += 1
    """
    rng = np.random.default_rng(1)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        state, _, _ = read_die(die)
        assert any(same_cells(state["cells"], e) for e in expect)


def _wv_targets() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rr, cc = np.meshgrid(np.arange(128), np.arange(24), indexing="ij")
    t = np.random.default_rng(11).integers(1, 16, (128, 24)) * 10e-6
    return rr.ravel(), cc.ravel(), t.ravel()


def _run_wv(url: str) -> None:
    from firmware_iface.write_verify import PulseSchedule

    rows, cols, targets = _wv_targets()
    with PEChip(url, timeout_s=30) as chip:
        chip.write_verify(rows, cols, targets, PulseSchedule(), batch=rows.size)   # one command


def test_sigkill_mid_command_leaves_before_or_after(tmp_path):
    import threading

    base = tmp_path / "base.h5"
    OpenDie(base, seed=4).close()
    before = cells_of(base)
    # the 'after' state: the same command run to completion on a copy (frozen: deterministic)
    ref = tmp_path / "ref.h5"
    shutil.copy(base, ref)
    with SimBench(instruments=False, die=ref, freeze=True) as sim:
        _run_wv(sim.chip_url)
    after = cells_of(ref)
    assert not same_cells(before, after)
    seen = set()
    for delay in (0.05, 0.15, 0.3, 0.6, 1.0):
        work = tmp_path / f"k{delay}.h5"
        shutil.copy(base, work)
        sim = SimBench(instruments=False, die=work, freeze=True)
        try:
            t = threading.Thread(target=lambda: _ignore(_run_wv, sim.chip_url), daemon=True)
            t.start()
            time.sleep(delay)
            os.kill(sim.proc.pid, signal.SIGKILL)
            t.join(30)
        finally:
            sim.close()
        got = cells_of(work)
        assert same_cells(got, before) or same_cells(got, after), f"die changed half-way (kill at {delay} s)"
        seen.add("before" if same_cells(got, before) else "after")
        read_die(work)                                           # and it loads
    print("kill outcomes:", sorted(seen))
    # killed right after the command's reply: the die already holds the command's effect
    work = tmp_path / "done.h5"
    shutil.copy(base, work)
    with SimBench(instruments=False, die=work, freeze=True) as sim:
        _run_wv(sim.chip_url)
        os.kill(sim.proc.pid, signal.SIGKILL)
        sim.proc.wait()
    assert same_cells(cells_of(work), after)


def _ignore(fn, *a) -> None:
    try:
        fn(*a)
    except Exception:  # noqa: BLE001 - the simulator is killed under the driver on purpose
        pass


# --- 3. time between sessions -----------------------------------------------------------------------
def test_elapsed_1e5_s_matches_closed_form(tmp_path):
    die = tmp_path / "d.h5"
    t_save = 1.8e9
    with OpenDie(die, seed=6, now_utc=t_save) as d:
        # A session's noise stream is seeded from the wall clock (die.py); fixed here so the
        # statistics below are a deterministic check (with a clock seed |z.mean| < 0.1 over
        # ~760 cells failed about 1 run in 40).
        d.chip.rng = np.random.default_rng(0)
        program_some(d.chip)
        d.save(now_utc=t_save)
    c = cells_of(die)
    with h5py.File(die) as h5:
        clock_saved = float(h5.attrs["clock_s"])
    with OpenDie(die, now_utc=t_save + 1e5) as d:
        assert d.chip.clock_s == pytest.approx(clock_saved + 1e5, abs=1e-9)
        g = d.chip.conductances()
    age = clock_saved + 1e5 - c["t_prog"]
    sigma = SIGMA_1S * np.log1p(age / T0) / math.log1p(1.0 / T0)
    expect = np.clip(c["g_prog"] * (1 + DRIFT_M * np.log1p(age)) + sigma * c["xi"], G_MIN, G_CELL_MAX)
    stuck = c["fab_stuck_on"] | c["fab_stuck_off"] | (c["pulse_count"] >= c["endurance_pulses"])
    expect = np.where(stuck, c["g_fab_stuck"], expect)
    assert np.allclose(g, expect, rtol=1e-12, atol=1e-15)
    # and the statistics: programmed cells spread by sigma(1e5 s) ~ 4 uS around the drifted mean
    prog = (c["pulse_count"] > 0) & ~stuck & (expect > G_MIN) & (expect < G_CELL_MAX)
    z = (g[prog] - c["g_prog"][prog] * (1 + DRIFT_M * np.log1p(age[prog]))) / sigma[prog]
    assert prog.sum() > 500 and abs(z.std() - 1) < 0.1 and abs(z.mean()) < 0.1
    assert 3.8e-6 < sigma[prog].mean() < 4.3e-6


def test_elapsed_through_pesim_uses_saved_wall_time(tmp_path):
    die = tmp_path / "d.h5"
    with OpenDie(die, seed=6) as d:
        program_some(d.chip)
    with h5py.File(die, "r+") as h5:            # the die was last saved 1e5 s ago
        h5.attrs["saved_utc"] = h5.attrs["saved_utc"] - 1e5
        clock_saved = float(h5.attrs["clock_s"])
    c = cells_of(die)
    with PEChip(f"pesim://?die={die}") as chip:
        g = np.array(chip.sim_query("conductances"))
        clock = chip.sim_query("clock_s")
    assert 1e5 <= clock - clock_saved < 1e5 + 60
    age = clock - c["t_prog"]
    sigma = SIGMA_1S * np.log1p(age / T0) / math.log1p(1.0 / T0)
    expect = np.clip(c["g_prog"] * (1 + DRIFT_M * np.log1p(age)) + sigma * c["xi"], G_MIN, G_CELL_MAX)
    stuck = c["fab_stuck_on"] | c["fab_stuck_off"]
    expect = np.where(stuck, c["g_fab_stuck"], expect)
    assert np.allclose(g, expect, rtol=1e-9, atol=1e-12)


def test_freeze_gives_bit_identical_reads_and_unfrozen_does_not(tmp_path):
    die = tmp_path / "d.h5"
    with OpenDie(die, seed=8) as d:
        program_some(d.chip)

    def read(freeze: bool) -> np.ndarray:
        url = f"pesim://?die={die}&freeze={int(freeze)}"
        r = py(f"""
            import json, sim_backend
            from drivers.pechip import PEChip
            with PEChip({url!r}) as c:
                print(json.dumps(c.read_array(averages=1).tolist()))
        """)
        assert r.returncode == 0, r.stderr
        return np.array(json.loads(r.stdout))

    a, b = read(True), read(True)
    assert np.array_equal(a, b)
    c, d = read(False), read(False)
    assert not np.array_equal(c, d)
    assert not np.array_equal(a, c)


# --- 4. one simulator per die -------------------------------------------------------------------------
def test_second_simulator_on_one_die_is_refused(tmp_path):
    die = tmp_path / "d.h5"
    with SimBench(instruments=False, die=die):
        for argv in (["sim", "serve", "--die", str(die), "--no-instruments"],
                     ["chip", "info", "--chip", f"pesim://?die={die}"]):
            r = cli(*argv, timeout=60)
            assert r.returncode == 2, (argv, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "in use by another simulator" in lines[0] and str(die) in lines[0]
            assert r.stdout == ""
    # released when the first one stops
    assert cli("chip", "info", "--chip", f"pesim://?die={die}").returncode == 0


def test_default_station_refused_while_its_die_is_served():
    r = cli("sim", "die", "new", "--json")
    path = json.loads(r.stdout)["file"]
    with SimBench(instruments=False, die=path):
        r = cli("chip", "info")
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and "in use" in r.stderr
        r = cli("sim", "die", "reset")
        assert r.returncode == 2 and "in use" in r.stderr


# --- wear ------------------------------------------------------------------------------------------------
def test_pulse_counts_accumulate_across_sessions(tmp_path):
    die = tmp_path / "d.h5"
    code = f"""
        import numpy as np, sim_backend
        from drivers.pechip import PEChip
        with PEChip("pesim://?die={die}") as c:
            for _ in range(5):
                c.pulse(np.ones(24, int), np.full(24, 3), np.arange(24), 2.0, 1.2, 0.0, 1e-6)
    """
    for _ in range(3):
        r = py(code)
        assert r.returncode == 0, r.stderr
    c = cells_of(die)
    assert np.all(c["pulse_count"][3] == 15) and c["pulse_count"].sum() == 15 * 24


def test_endurance_failures_follow_the_documented_law():
    """Cycle every cell SET/RESET; a cell has failed when its conductance no longer moves.  The
    failure counts follow the lognormal law of docs/chip_model.md (median, sigma_ln) and the
    failed cells sit stuck-on (160-200 uS) or stuck-off (< 3.6 uS), about half each."""
    median, sig = 100.0, 0.5
    chip = VirtualChip(chip_seed=12, fidelity="typical", endurance_median_pulses=median,
                       endurance_sigma_ln=sig)
    rr, cc = np.meshgrid(np.arange(128), np.arange(24), indexing="ij")
    rows, cols = rr.ravel(), cc.ravel()
    n = rows.size
    g_prev = chip.conductances().ravel()
    last_change = np.zeros(n, dtype=np.int64)
    n_pulses = 400
    for k in range(1, n_pulses + 1):
        kind = 1 if k % 2 else -1
        v_bl, v_sl = (2.2, 0.0) if kind > 0 else (0.0, 2.2)
        chip.pulse(np.full(n, kind), rows, cols, v_bl, 1.4 if kind > 0 else 1.8, v_sl, 1e-6)
        g = chip.conductances().ravel()
        last_change[g != g_prev] = k
        g_prev = g
    fab = last_change == 0                                    # stuck from fabrication
    failed_at = last_change[~fab]                              # the pulse that moved it last
    for n_p in (50, 100, 200):                                 # lognormal CDF at n_p pulses
        frac = np.mean(failed_at <= n_p)
        assert abs(frac - 0.5 * (1 + math.erf(math.log(n_p / median) / (sig * math.sqrt(2))))) < 0.03
    g_fail = g_prev[~fab][failed_at < n_pulses - 2]
    on, off = g_fail >= 160e-6, g_fail < 3.6e-6
    assert np.all(on | off) and np.all(g_fail <= 200e-6)
    assert abs(on.mean() - 0.5) < 0.05
