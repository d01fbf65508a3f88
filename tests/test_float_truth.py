"""The numerical truth: edgetrain/reference/float_model.py is a correct float64
gradient (finite differences), and the integer pass's per-layer weight
gradients point the same way as it does on real data at typical scales."""
from __future__ import annotations

import numpy as np
import pytest

from edgetrain.backends import CBackend, NumpyBackend
from edgetrain.config import OPT_BIAS, OPT_SGD, TrainConfig
from edgetrain.data import mnist
from edgetrain.model.presets import preset
from edgetrain.reference.float_model import FloatNet, real_input
from test_train_twin import tiny_bn, tiny_dense_bn


def ce_loss(net: FloatNet, x, label) -> float:
    z = net.forward(x, train=False)
    z = z - z.max()
    return float(np.log(np.exp(z).sum()) - z[label])


@pytest.mark.parametrize("build", [tiny_bn, tiny_dense_bn])
def test_float_gradients_match_finite_differences(build):
    """Unbounded float network in inference mode (BN an affine map): analytic == numerical gradient."""
    model = build(3)
    net = FloatNet(model, ranges=False)
    rng = np.random.default_rng(0)
    for p in net.params:
        if "gamma" in p:
            c = p["gamma"].size
            p["mean"], p["msq"], p["decay"] = rng.uniform(0.2, 0.6, c), rng.uniform(0.5, 0.9, c), 0.0
            p["gamma"], p["beta"] = rng.uniform(0.5, 1.5, c), rng.uniform(-0.3, 0.3, c)
        if "b" in p:
            p["b"] = rng.uniform(0.0, 0.2, p["b"].size)
    x = rng.uniform(0, 1, (model.input_shape.h, model.input_shape.w, 1))
    label = 1
    net.forward(x, train=False)
    grads = net.backward(label)
    eps = 1e-6
    checked = 0
    for i, (p, g) in enumerate(zip(net.params, grads)):
        for key, target in (("dW", "W"), ("db", "b"), ("dgamma", "gamma"), ("dbeta", "beta")):
            if key not in g:
                continue
            flat = p[target].reshape(-1)
            for j in rng.choice(flat.size, min(6, flat.size), replace=False):
                old = flat[j]
                flat[j] = old + eps
                up = ce_loss(net, x, label)
                flat[j] = old - eps
                down = ce_loss(net, x, label)
                flat[j] = old
                numeric = (up - down) / (2 * eps)
                assert abs(g[key].reshape(-1)[j] - numeric) <= 1e-6 + 1e-4 * abs(numeric), (i, key, j)
                checked += 1
    assert checked > 20


def float_twin_of(model, state) -> FloatNet:
    """A FloatNet holding the integer state's current values."""
    net = FloatNet(model)
    net.load({i: ls.weights.copy() for i, ls in enumerate(state.layers) if ls.weights is not None},
             {i: ls.bias.copy() for i, ls in enumerate(state.layers) if ls.bias is not None},
             {i: (ls.bn.copy(), ls.bn_decay_q30) for i, ls in enumerate(state.layers) if ls.bn is not None})
    return net


def gradient_cosines(model, image: bytes, xs, ys) -> dict[str, list[float]]:
    """Per weight layer, cosine between the integer weight gradient (sum of its (delta, x)
    terms) and the float64 one, for each sample, from the same starting state."""
    out: dict[str, list[float]] = {}
    for x, y in zip(xs, ys):
        probe = NumpyBackend(model, TrainConfig(optimizer=OPT_BIAS, bn_warm=True), image=image)
        terms: dict[int, list] = {}
        probe.state.hook = lambda layer, pair: terms.setdefault(layer, []).append(pair)
        net = float_twin_of(model, probe.state)
        probe.step(x, int(y))
        net.forward(real_input(x, model.input_shape), train=True)
        grads = net.backward(int(y))
        for layer, pairs in terms.items():
            fixed_dw = sum(np.outer(p.delta.astype(np.int64), p.x.astype(np.int64)) for p in pairs).astype(np.float64)
            float_dw = grads[layer]["dW"]
            cos = float((fixed_dw * float_dw).sum() / (np.linalg.norm(fixed_dw) * np.linalg.norm(float_dw)))
            out.setdefault(model.layers[layer].name, []).append(cos)
    return out


@pytest.mark.full_mnist  # the bounds were measured on the training split's images 0..999 and 20000..20039
@pytest.mark.parametrize("name, warm, median_min, p10_min", [("mcu-cnn", 1000, 0.98, 0.93), ("mlp", 300, 0.995, 0.97)])
def test_fixed_point_gradients_point_like_float64(full_mnist_dir, name, warm, median_min, p10_min):
    """Train from the seeded init for `warm` MNIST samples (C backend), checkpoint, then compare
    the gradients of 40 further samples. Measured (seed 0): mcu-cnn medians fc2 0.9999,
    fc1 0.999, conv2 0.992, conv1 0.991; mlp fc2 1.0000, fc1 0.9994."""
    images, labels = mnist.load("train", full_mnist_dir)
    model = preset(name, 0)
    cb = CBackend(model, TrainConfig(optimizer=OPT_SGD))
    for i in range(warm):
        cb.step(images[i], int(labels[i]))
    cb.checkpoint()
    cos = gradient_cosines(model, cb.image().tobytes(), images[20000:20040], labels[20000:20040])
    assert set(cos) == {layer.name for layer in model.trainable_layers()}
    for layer, values in cos.items():
        med, p10 = float(np.median(values)), float(np.percentile(values, 10))
        print(f"{name} {layer}: median cosine {med:.4f}, 10th percentile {p10:.4f}")
        assert med >= median_min, (layer, med)
        assert p10 >= p10_min, (layer, p10)
