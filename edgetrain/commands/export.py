"""``edgetrain export MODEL -o M.etm [--c-header M.h]``: Keras or TFLite model -> .etm (+ C header)."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from .. import __version__
from ..errors import ArgumentError
from . import argtypes


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="convert a Keras (.keras/.h5) or TFLite (.tflite) model to a .etm model blob",
        description="Convert a Keras or TFLite model to the device's .etm format (docs/model-format.md) "
        "and print how well the device formats represent its weights.",
    )
    p.add_argument("model", help="a .keras/.h5 Keras model (needs edgetrain[tf]) or a .tflite flatbuffer")
    p.add_argument("-o", "--output", required=True, type=argtypes.output_file, help="the .etm file to write")
    p.add_argument("--c-header", metavar="FILE", type=argtypes.output_file, help="also write the blob as a C header (const uint8_t array)")
    p.add_argument("--symbol", type=argtypes.c_identifier, help="C array name (default: from the output file name)")
    p.add_argument("--align", type=int, default=4, help="NVM program unit in bytes: tensors start at multiples of it (power of two, 2..65536; default 4)")
    p.add_argument("--name", help="model name stored in the blob (default: the input file's stem)")
    p.add_argument("--saturate", action="store_true", help="clamp values outside the device formats instead of failing")
    p.add_argument("--json", metavar="FILE", type=argtypes.output_file, help="write the per-layer mapping report as JSON")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST folder (default: $EDGETRAIN_DATA_DIR): measure the accuracy "
                   "of the source model and of the device model on MNIST test images (28x28x1 models with 10 classes)")
    p.add_argument("--eval-samples", type=argtypes.int_range(0), default=1000, help="test images for that measurement (default 1000; 0: skip it)")
    p.add_argument("--input-divisor", type=int, choices=(255, 256), default=256,
                   help="the source model is fed pixel/DIVISOR (default 256: what the device reads)")
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
    from ..outputs import write_atomic, write_report
    from ..export import convert_keras, convert_tflite
    from ..export.c_header import c_header, c_symbol
    from ..model.etm import write_etm

    if args.symbol is not None and args.c_header is None:
        raise ArgumentError("--symbol names the array of the C header: give --c-header FILE too")
    source = Path(args.model)
    if not source.is_file():
        raise ArgumentError(f"{source}: no such file")
    kind = _kind(source)
    keras_model = None
    if kind == "tflite":
        conversion = convert_tflite(source, name=args.name, saturate=args.saturate)
    else:
        from ..export.keras import load_keras

        keras_model = load_keras(source)
        conversion = convert_keras(keras_model, name=args.name or source.stem, saturate=args.saturate)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    source_name = "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in source.name)
    provenance = f"edgetrain {__version__} export from {kind} {source_name} sha256 {digest}"
    blob = write_etm(conversion.model, align=args.align, provenance=provenance)
    out = Path(args.output)
    write_atomic(out, blob)
    print(conversion.summary())
    print(f"wrote {out} ({len(blob)} bytes, {len(conversion.model.layers)} layers, {conversion.model.n_weights()} weights, align {args.align})")
    if args.c_header:
        header = Path(args.c_header)
        symbol = args.symbol or c_symbol(out.stem + "_etm")
        write_atomic(header, c_header(blob, symbol, align=max(args.align, 4), source=source.name, source_sha256=digest))
        print(f"wrote {header} (const uint8_t {symbol}[{len(blob)}])")
    accuracy = _accuracy(args, conversion.model, source if kind == "tflite" else None, keras_model)
    if args.json:
        report = {
            "source": str(source), "source_sha256": digest, "kind": kind, "output": str(out), "bytes": len(blob),
            "align": args.align, "layers": [r.as_dict() for r in conversion.layers], "notes": conversion.notes,
            "accuracy": accuracy.as_dict() if accuracy is not None else None,
        }
        write_report(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _accuracy(args, model, tflite_path, keras_model):
    """Source vs device accuracy on MNIST test images, when the data are at hand (else say why not)."""
    import os

    from ..data import mnist
    from ..errors import UnsupportedError
    from ..export.evaluate import evaluate_mapping, mnist_test

    if args.eval_samples == 0:
        return None
    if not (args.data_dir or os.environ.get(mnist.ENV)):
        print(f"accuracy: not measured (give --data-dir DIR or set ${mnist.ENV} to the MNIST folder)")
        return None
    try:
        images, labels = mnist_test(model, args.data_dir, args.eval_samples)
    except UnsupportedError as exc:
        print(f"accuracy: not measured ({exc})")
        return None
    result = evaluate_mapping(model, images, labels, tflite=tflite_path.read_bytes() if tflite_path else None,
                              keras_model=keras_model, divisor=args.input_divisor)
    print(result.summary())
    return result
