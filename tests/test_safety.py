"""Nothing outside the station's limits reaches the board: refused before any byte is sent."""
import numpy as np
import pytest

from drivers.errors import LimitError
from drivers.limits import ChipLimits
from drivers.pechip import PEChip
from firmware_iface.spec import PulseKind
from firmware_iface.write_verify import PulseSchedule

LIMITS = ChipLimits(v_set_max_v=3.0, v_reset_max_v=3.0, v_wl_max_v=2.5, v_read_max_v=0.3,
                    pulse_width_max_s=10e-6, max_pulses_per_cell=300)

REFUSED = {
    "set_voltage": lambda c: c.pulse(PulseKind.SET, 0, 0, 3.2, 1.8, 0.0, 1e-6),
    "reset_voltage": lambda c: c.pulse(PulseKind.RESET, 0, 0, 0.0, 1.8, 3.5, 1e-6),
    "wl_voltage": lambda c: c.pulse(PulseKind.SET, 0, 0, 1.0, 2.6, 0.0, 1e-6),
    "width_long": lambda c: c.pulse(PulseKind.SET, 0, 0, 1.0, 1.8, 0.0, 20e-6),
    "width_short": lambda c: c.pulse(PulseKind.SET, 0, 0, 1.0, 1.8, 0.0, 1e-9),
    "nan_voltage": lambda c: c.pulse(PulseKind.SET, 0, 0, float("nan"), 1.8, 0.0, 1e-6),
    "one_bad_in_batch": lambda c: c.pulse(PulseKind.SET, [0, 1, 2], [0, 0, 0], [1.0, 1.0, 3.01], 1.8, 0.0, 1e-6),
    "read_voltage": lambda c: c.read_array(v_read_v=0.4),
    "v_read_register": lambda c: c.write_register("V_READ", 0.35),
    "time_step": lambda c: c.write_register("TIME_STEP", 1e-9),
    "schedule_max": lambda c: c.write_verify([0], [0], [50e-6], PulseSchedule(set_max_v=3.5)),
    "schedule_wl": lambda c: c.write_verify([0], [0], [50e-6], PulseSchedule(reset_wl_v=3.0)),
    "schedule_pulses": lambda c: c.write_verify([0], [0], [50e-6], PulseSchedule(set_max_v=3.0, reset_max_v=3.0, set_wl_v=1.8, reset_wl_v=2.5, max_pulses=400)),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_out_of_limit_commands_never_reach_the_board(case):
    with PEChip("pesim://?seed=1", limits=LIMITS) as chip:
        chip.info()  # cached; the only frame the board has seen
        fw = chip._port.firmware
        before = fw.frames_rx
        with pytest.raises(LimitError) as exc:
            REFUSED[case](chip)
        assert fw.frames_rx == before, "a refused command reached the board"
        assert "limit" in str(exc.value) and "\n" not in str(exc.value)


def test_within_limits_is_sent():
    with PEChip("pesim://?seed=1", limits=LIMITS) as chip:
        chip.info()
        fw = chip._port.firmware
        before = fw.frames_rx
        chip.pulse(PulseKind.SET, 0, 0, 3.0, 2.5, 0.0, 10e-6)
        assert fw.frames_rx == before + 1
        assert np.isfinite(chip.read_array(v_read_v=0.3)).all()


def test_spike_voltage_in_force_is_checked_before_a_run():
    low = ChipLimits(v_spike_max_v=0.1)
    # a board left at its default 0.2 V spike amplitude by an earlier session
    with PEChip("pesim://?seed=1", limits=low) as chip:
        chip.upload_spikes(np.zeros((1, 300, 128), bool))
        fw = chip._port.firmware
        with pytest.raises(LimitError, match="V_SPIKE"):
            chip.run(1)
        assert fw.chip.clock_s == 0.0 and not fw.outputs  # nothing ran
        chip.write_register("V_SPIKE", 0.1)
        chip.run(1)
        assert len(fw.outputs) == 1


def test_wait_is_bounded():
    with PEChip("pesim://?seed=1") as chip:
        with pytest.raises(ValueError, match="wait must be"):
            chip.wait(1e30)
