"""The Python model description mirrors et_model.h."""
from __future__ import annotations

from edgetrain.model import description as d
from edgetrain.model import kinds


def test_enums_match_the_c_header(core):
    _, lib = core
    for kind in d.LayerKind:
        assert getattr(lib, f"ET_LAYER_{kind.name}") == kind.value
    for act in d.Activation:
        assert getattr(lib, f"ET_ACT_{act.name}") == act.value
    for pad in d.Padding:
        assert getattr(lib, f"ET_PAD_{pad.name}") == pad.value
    assert lib.ET_MAX_LAYERS == d.MAX_LAYERS
    assert lib.ET_NO_TENSOR == d.NO_TENSOR


def test_c_layer_struct_has_every_python_field(core):
    ffi, _ = core
    c_fields = {name for name, _ in ffi.typeof("et_layer_t").fields}
    assert {"kind", "activation", "padding", "kernel", "alpha_shift", "in", "out", "weight_offset", "bias_offset", "bn_offset"} <= c_fields


def test_every_layer_kind_has_its_own_report_name():
    names = [kinds.kind_name(kind) for kind in d.LayerKind]
    assert len(set(names)) == len(d.LayerKind)  # no kind reported as another
