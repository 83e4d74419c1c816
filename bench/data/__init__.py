"""Event data: AEDAT 3.1 reader/writer, DVS128 Gesture labels and splits, the synthetic
gesture set and preprocessing into input spike trains (issue 6, items 1-3)."""
from bench.data.aedat import EVENT_DTYPE, read_aedat, write_aedat
from bench.data.dataset import Sample, iter_samples, load_split
from bench.data.preprocess import PreprocessConfig, batch_to_spikes, to_spikes

__all__ = [
    "EVENT_DTYPE", "read_aedat", "write_aedat", "Sample", "iter_samples", "load_split",
    "PreprocessConfig", "to_spikes", "batch_to_spikes",
]
