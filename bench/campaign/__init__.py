"""Measurement campaigns (issue 11): declarative sweeps over the bench's procedures.

- :mod:`bench.campaign.plan`        TOML plan -> validated, typed :class:`Plan` (all problems at once);
- :mod:`bench.campaign.procedures`  the steps a point is built from (adapters to bench procedures);
- :mod:`bench.campaign.point`       run one point on its own simulated bench (a worker's job);
- :mod:`bench.campaign.store`       the campaign HDF5 file (single writer, ``committed`` last);
- :mod:`bench.campaign.engine`      dask.distributed scheduling, resume, signals, dedup.
"""
