"""Plain-numpy physics of the PE macro: RRAM cells, crossbar, analog neurons, energy.

This subpackage is the *public* physics API of ``sim_backend``: it knows nothing of the
wire protocol and may be imported by ``bench`` (software layers, training) so that the
software network and the simulated chip share one neuron implementation
(see docs/decisions/0002-shared-neuron-model.md).
"""
