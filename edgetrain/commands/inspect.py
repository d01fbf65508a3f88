"""``edgetrain inspect M.etm [--json]``: check a .etm blob with the C parser and the Python reader, and list it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ArgumentError, raise_for_status


def register(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="validate a .etm model blob (C core and Python reader) and list its layers",
        description="Validate a .etm file with the C core's et_etm_parse and the Python reader; "
        "both must accept it. Prints the header and the layer table.",
    )
    p.add_argument("blob", help="the .etm file, or a pretrained model's name (mcu-cnn-pretrained)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core import ffi, lib
    from ..model.etm import read_etm
    from ..reference.fixed import FORMAT_NAMES

    from ..model.loader import PRETRAINED, pretrained_path
    from ..model.presets import PRESETS

    path = pretrained_path(args.blob) if args.blob in PRETRAINED else Path(args.blob)
    if args.blob in PRESETS and not path.is_file():
        raise ArgumentError(f"{args.blob} is a preset built in code, with no .etm file: inspect a .etm file or a "
                            f"pretrained model ({', '.join(PRETRAINED)})")
    if not path.is_file():
        raise ArgumentError(f"{path}: no such file (give a .etm file or a pretrained model: {', '.join(PRETRAINED)})")
    data = path.read_bytes()
    buf = ffi.new("uint8_t[]", max(len(data), 1))
    ffi.memmove(buf, data, len(data))
    model = ffi.new("et_model_t *")
    bad = ffi.new("uint32_t *", 0)
    status = lib.et_etm_parse(buf, len(data), 0, model, ffi.NULL, bad)
    raise_for_status(status, f"et_etm_parse({path}) rejected the blob at byte {bad[0]}")
    parsed = read_etm(data)
    m = parsed.model
    layers = []
    for layer, off in zip(m.layers, parsed.offsets):
        shape = lambda s: f"{s.h}x{s.w}x{s.c} {FORMAT_NAMES[s.fmt]}"  # noqa: E731
        layers.append({
            "name": layer.name, "kind": layer.kind.name.lower(), "in": shape(layer.in_shape), "out": shape(layer.out_shape),
            "activation": layer.activation.name.lower(), "kernel": layer.kernel, "alpha_shift": layer.alpha_shift,
            "weights_offset": None if layer.weights is None else off.weight,
        })
    summary = {
        "file": str(path), "name": m.name, "version": parsed.version, "bytes": parsed.blob_size, "align": parsed.align,
        "image_offset": parsed.image_offset, "image_size": parsed.image_size, "crc32": f"0x{parsed.blob_crc:08X}",
        "provenance": parsed.provenance, "weights": m.n_weights(), "layers": layers,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{path}: .etm v{parsed.version}, {parsed.blob_size} bytes, CRC-32 0x{parsed.blob_crc:08X}, align {parsed.align}; "
          "accepted by the C core and the Python reader")
    print(f"model {m.name!r}: {len(m.layers)} layers, {m.n_weights()} weights; provenance: {parsed.provenance or '-'}")
    for i, l in enumerate(layers):
        extra = f" k={l['kernel']}" if l["kind"] == "conv2d" else ""
        alpha = f" alpha=2^-{l['alpha_shift']}" if l["weights_offset"] is not None else ""
        print(f"  {i:2d} {l['kind']:<10} {l['name'][:28]:<28} {l['in']:>22} -> {l['out']:<22} {l['activation']}{extra}{alpha}")
    return 0
