"""``edgetrain export MODEL -o M.etm [--c-header M.h]``: Keras or TFLite model -> .etm (+ C header)."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from .. import __version__
from ..errors import ArgumentError


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="convert a Keras (.keras/.h5) or TFLite (.tflite) model to a .etm model blob",
        description="Convert a Keras or TFLite model to the device's .etm format (docs/model-format.md) "
        "and print how well the device formats represent its weights.",
    )
    p.add_argument("model", help="a .keras/.h5 Keras model (needs edgetrain[tf]) or a .tflite flatbuffer")
    p.add_argument("-o", "--output", required=True, help="the .etm file to write")
    p.add_argument("--c-header", metavar="FILE", help="also write the blob as a C header (const uint8_t array)")
    p.add_argument("--symbol", help="C array name (default: from the output file name)")
    p.add_argument("--align", type=int, default=4, help="NVM program unit in bytes: tensors start at multiples of it (power of two, 2..65536; default 4)")
    p.add_argument("--name", help="model name stored in the blob (default: the input file's stem)")
    p.add_argument("--saturate", action="store_true", help="clamp values outside the device formats instead of failing")
    p.add_argument("--json", metavar="FILE", help="write the per-layer mapping report as JSON")
    p.set_defaults(func=run)


def _kind(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return "keras"
    raise ArgumentError(f"{path}: neither a TFLite flatbuffer nor a .keras/.h5 file")


def run(args: argparse.Namespace) -> int:
    from ..export import convert_keras, convert_tflite
    from ..export.c_header import c_header, c_symbol
    from ..model.etm import write_etm

    source = Path(args.model)
    if not source.is_file():
        raise ArgumentError(f"{source}: no such file")
    kind = _kind(source)
    convert = convert_tflite if kind == "tflite" else convert_keras
    conversion = convert(source, name=args.name, saturate=args.saturate)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    source_name = "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in source.name)
    provenance = f"edgetrain {__version__} export from {kind} {source_name} sha256 {digest}"
    blob = write_etm(conversion.model, align=args.align, provenance=provenance)
    out = Path(args.output)
    out.write_bytes(blob)
    print(conversion.summary())
    print(f"wrote {out} ({len(blob)} bytes, {len(conversion.model.layers)} layers, {conversion.model.n_weights()} weights, align {args.align})")
    if args.c_header:
        header = Path(args.c_header)
        symbol = args.symbol or c_symbol(out.stem + "_etm")
        header.write_text(c_header(blob, symbol, align=max(args.align, 4), source=source.name, source_sha256=digest))
        print(f"wrote {header} (const uint8_t {symbol}[{len(blob)}])")
    if args.json:
        report = {
            "source": str(source), "source_sha256": digest, "kind": kind, "output": str(out), "bytes": len(blob),
            "align": args.align, "layers": [r.as_dict() for r in conversion.layers], "notes": conversion.notes,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
