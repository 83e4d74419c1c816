"""Reliability: a faulty link gives the same results as a clean one, nothing applied twice."""
import numpy as np

from drivers.pechip import PEChip
from firmware_iface.spec import PulseKind


def mixed_commands(chip: PEChip, n: int, seed: int = 0, kinds: list | None = None) -> list:
    rng = np.random.default_rng(seed)
    results = []
    kinds = [] if kinds is None else kinds
    for i in range(n):
        k = rng.integers(0, 6)
        kinds.append(int(k))
        r, c = int(rng.integers(0, 128)), int(rng.integers(0, 24))
        if k == 0:
            results.append(chip.ping(bytes(rng.integers(0, 256, 16, dtype=np.uint8))))
        elif k == 1:
            results.append(chip.write_register("THRESHOLD", float(rng.integers(500, 1500)) * 1e-3))
        elif k == 2:
            results.append(chip.read_register("THRESHOLD"))
        elif k == 3:
            kind = PulseKind.SET if rng.random() < 0.6 else PulseKind.RESET
            chip.pulse(kind, r, c, 2.0 if kind == PulseKind.SET else 0.0, 1.8,
                       0.0 if kind == PulseKind.SET else 2.0, 1e-6)
            results.append(("pulse", r, c))
        elif k == 4:
            results.append(float(chip.read_cells([r], [c], averages=2)[0]))
        else:
            results.append(chip.status()["samples_stored"])
    return results


def test_10000_commands_on_a_faulty_link_match_a_clean_link():
    n = 10_000
    with PEChip("pesim://?seed=5&fidelity=typical", retries=10) as clean:
        want = mixed_commands(clean, n)
        want_g = clean.read_array()
    url = "pesim://?seed=5&fidelity=typical&ber=1e-5&drop=0.005&link_seed=11"
    with PEChip(url, retries=10) as faulty:
        kinds: list = []
        got = mixed_commands(faulty, n, kinds=kinds)
        got_g = faulty.read_array()
        fw = faulty._port.firmware
        stats = faulty.stats
        link = faulty._port.link.stats
    assert got == want
    assert np.array_equal(got_g, want_g)
    # faults really happened, and every one was recovered by a retry
    assert link["dropped"] > 50 and link["bit_errors"] > 0
    assert stats.retries >= link["dropped"] * 0.5
    # nothing executed twice: the board ran each sequenced command exactly once (STATUS is
    # exempt from the seq rules by the protocol: a retried STATUS is simply served again; so are
    # the pieces of a bulk transfer and the STATUS closing each of its rounds)
    assert fw.executed == stats.commands - kinds.count(5) - stats.unsequenced
    assert fw.duplicates > 0
