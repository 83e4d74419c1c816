"""Networks for the chip: description, model files, training, hardware-aware options, NIR.

- :mod:`bench.network.model`     ``Network``/``Dense``/``InputConfig``, software forward, ``predict``
- :mod:`bench.network.modelfile` ``save_model``/``load_model`` (HDF5, documented format)
- :mod:`bench.network.train`     surrogate-gradient BPTT, ``train``, ``layer_gradient`` (fine-tuning)
- :mod:`bench.network.hwaware`   conductance quantisation, weight noise, neuron mismatch
- :mod:`bench.network.nir_io`    NIR export / import
"""
from bench.network.model import Dense, InputConfig, Network, accuracy, predict, spike_counts

__all__ = ["Dense", "InputConfig", "Network", "accuracy", "predict", "spike_counts"]
