"""``snnbench model export-nir | import-nir``: exchange networks with other SNN frameworks (issue 7).

``snnbench model export-nir MODEL.h5 OUT.nir`` writes the network as a NIR graph (Input,
SumPool2d, Flatten, Linear, LIF, Output; our exact neuron parameters in node metadata, see
bench.network.nir_io).  ``snnbench model import-nir IN.nir MODEL.h5 [--dt-s S]`` reads a NIR
graph (ours exactly; others by the documented mapping) and writes a model file.  A node type or
parameter the chip cannot represent fails with a message naming it (exit 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


from bench.commands._args import pos_float
from bench.commands._groups import group


def register(subparsers, common_parent: argparse.ArgumentParser) -> None:
    model = group(subparsers, "model", "model files: NIR export and import")
    e = model.add_parser("export-nir", parents=[common_parent], help="write a model as a NIR graph",
                         description="Write MODEL.h5 as a NIR graph (.nir, HDF5).")
    e.add_argument("model", metavar="MODEL.h5")
    e.add_argument("out", metavar="OUT.nir")
    e.set_defaults(func=export_command)
    i = model.add_parser("import-nir", parents=[common_parent], help="make a model file from a NIR graph",
                         description="Read a NIR graph and write a model file.")
    i.add_argument("nir_file", metavar="IN.nir")
    i.add_argument("out", metavar="MODEL.h5")
    i.add_argument("--dt-s", type=pos_float, default=100e-9,
                   help="chip time step (s) for graphs without snnbench metadata (default 1e-7)")
    i.set_defaults(func=import_command)


def _describe(net) -> dict[str, Any]:
    return {"sizes": net.sizes, "chip_layer": net.chip_layer, "dt_s": net.dt_s,
            "acceleration": net.acceleration}


def export_command(args) -> dict[str, Any]:
    from bench.network.modelfile import load_model
    from bench.network.nir_io import export_nir
    from bench.runstore import check_writable

    check_writable(args.out)  # before any work: a directory or an unwritable path is a one-line error
    net = load_model(args.model)
    out = export_nir(net, args.out)
    return {"model": str(args.model), "out": str(out), **_describe(net),
            "nodes": 3 + 2 * len(net.layers) + 1,
            "summary": f"exported {net.sizes} from {args.model} to {out}"}


def import_command(args) -> dict[str, Any]:
    from bench.network.modelfile import save_model
    from bench.network.nir_io import import_nir
    from bench.runstore import check_writable

    check_writable(args.out)
    net = import_nir(args.nir_file, dt_s=args.dt_s)
    net.metadata.setdefault("imported_from", str(Path(args.nir_file)))
    out = save_model(net, args.out)
    return {"nir": str(args.nir_file), "out": str(out), **_describe(net),
            "summary": f"imported {net.sizes} from {args.nir_file} to {out}"}
