"""Open the bench a command works on: the station's chip (and SMUs), or the simulated bench.

    with open_bench(args.station, args.chip) as b:
        b.chip.info()

With no station file and no ``--chip`` the built-in simulated bench is started
(``SimBench``) and reached through ``socket://`` — the same code path as the lab.  A
``--chip`` URL overrides the station's.  ``pesim://`` URLs (in-process virtual board) are
available once ``sim_backend`` is importable.
"""
from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field

from pathlib import Path

from bench import dies
from bench.simbench import SimBench
from bench.station import Station, load_station
from drivers.pechip import PEChip


def register_sim_urls() -> None:
    """Make ``pesim://`` available when the simulator package is installed."""
    if importlib.util.find_spec("sim_backend") is not None:
        import sim_backend  # noqa: F401  (registers the URL scheme with pyserial)


@dataclass
class Bench:
    station: Station
    chip: PEChip
    chip_url: str
    smu: list[dict] = field(default_factory=list)
    sim: SimBench | None = None

    @property
    def simulated(self) -> bool:
        return self.sim is not None or self.chip_url.startswith("pesim://")


def resolve_station(station_path: str | None) -> Station:
    return load_station(station_path)


def station_die(st: Station) -> Path | None:
    """The die file a simulated station's chip lives in (None: a fresh die per command)."""
    die = st.chip.die
    if not die:
        return None
    if die == "default":
        return dies.prepare_current_die()
    p = Path(die).expanduser()
    if not p.is_absolute() and Path(st.source).is_file():
        p = Path(st.source).parent / p
    return p


@contextlib.contextmanager
def open_bench(station_path: str | None = None, chip_url: str | None = None, *,
               smu: bool = False, station: Station | None = None) -> Iterator[Bench]:
    """Context manager yielding a :class:`Bench` with an open chip driver."""
    st = station or load_station(station_path)
    register_sim_urls()
    sim = None
    url = st.chip.url if chip_url is None else chip_url  # --chip '' is an error, not "use the default"
    smus: list[dict] = [
        {"resource": s.resource, "model": s.model, "rail": s.rail, "channel": s.channel}
        for s in st.smu]
    with contextlib.ExitStack() as stack:
        if url == "sim":
            sim = stack.enter_context(SimBench(seed=st.chip.seed, run_seed=st.chip.run_seed,
                                               fidelity=st.chip.fidelity, instruments=smu,
                                               die=station_die(st)))
            url = sim.chip_url
            if not st.smu:
                smus = sim.smu
        chip = stack.enter_context(PEChip(url, timeout_s=st.chip.timeout_s, retries=st.chip.retries,
                                          limits=st.limits))
        yield Bench(station=st, chip=chip, chip_url=url, smu=smus, sim=sim)
