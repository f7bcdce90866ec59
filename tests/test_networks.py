"""Tests of :mod:`skflow.networks`, the neural velocity fields.

What is tested against what
---------------------------
* :class:`~skflow.networks.TimeEmbedding`: its width ``2 K + 1`` against ``n_features`` and the
  output shape, its values against ``[t, sin(2 pi k t), cos(2 pi k t)]`` computed in NumPy, for
  several ``K``.
* :class:`~skflow.networks.VelocityMLP`: output shape ``(n, d)`` for several widths and depths
  (no hidden layer included); the layer widths against ``d + 2 K + 1`` inputs; that the output
  depends on ``t`` and on ``x``, row by row; that gradients reach every parameter.
* Every activation in :data:`~skflow.networks.ACTIVATIONS` builds, appears in the network and gives
  finite outputs.
* Float64: after ``.double()`` the parameters, the embedding's buffer and the output are float64,
  and the output agrees with the float32 network to float32 precision.
* :class:`~skflow.networks.VelocityBlockMLP`: its output against its formula written out with
  torch's functional layers; blocks whose weights are zero pass their input through unchanged; a
  layer norm and the time embedding's inputs in every block; outputs depend on ``t`` and ``x`` row
  by row and gradients reach every parameter. :data:`~skflow.networks.ARCHITECTURES` names both.
* :class:`~skflow.networks.FourierFeatureVelocity`: its output against its inner network evaluated
  by hand on ``[x, sin(x B), cos(x B)]``; the inner network's ``d + 2 m`` inputs and ``d`` outputs
  for both architectures; the entries of ``B`` have standard deviation ``scale / sqrt(d)`` (to
  sampling error); ``B`` is a buffer, fixed by the seed and not trained.
* :class:`~skflow.networks.ClassConditionalVelocity` (built by ``NetworkSpec(n_classes=K)`` for
  both architectures, with and without Fourier features): its output against its inner network
  of ``d + K`` inputs and ``d`` outputs evaluated by hand on ``[x, one_hot(y)]``; one label
  broadcasts to every row; :class:`~skflow.networks.ConditionedVelocity` gives the same field.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from skflow._spec import NetworkSpec
from skflow.networks import (
    ACTIVATIONS,
    ARCHITECTURES,
    ClassConditionalVelocity,
    ConditionedVelocity,
    FourierFeatureVelocity,
    TimeEmbedding,
    VelocityBlockMLP,
    VelocityMLP,
)

TIMES = np.array([0.0, 0.125, 0.3, 0.5, 0.77, 1.0])


def _reference_embedding(t, n_frequencies):
    k = np.arange(1, n_frequencies + 1)
    angles = 2 * np.pi * t[:, None] * k[None, :]
    return np.concatenate([t[:, None], np.sin(angles), np.cos(angles)], axis=1)


def _inputs(n=5, d=3, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=generator).to(dtype)
    return t, torch.randn(n, d, generator=generator).to(dtype)


@pytest.mark.parametrize("n_frequencies", [1, 4, 8])
def test_time_embedding_width_and_values(n_frequencies):
    embedding = TimeEmbedding(n_frequencies)
    assert embedding.n_features == 2 * n_frequencies + 1
    out = embedding(torch.tensor(TIMES, dtype=torch.float32))
    assert out.shape == (len(TIMES), 2 * n_frequencies + 1)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _reference_embedding(TIMES, n_frequencies), atol=1e-5)
    # the frequencies are a buffer: moved by .to() / .double(), not trained
    assert not list(embedding.parameters())
    assert "frequencies" in dict(embedding.named_buffers())


def test_time_embedding_default_and_float64():
    embedding = TimeEmbedding()
    float32_out = embedding(torch.tensor(TIMES, dtype=torch.float32))
    embedding = embedding.double()
    assert embedding.n_features == 17
    out = embedding(torch.tensor(TIMES))
    assert out.dtype == torch.float64
    # the frequencies are rounded to float32 when built, so even in float64 the features match
    # sin / cos(2 pi k t) to float32 precision only (and match the float32 embedding the network
    # was trained with)
    np.testing.assert_allclose(out.numpy(), _reference_embedding(TIMES, 8), atol=1e-5)
    np.testing.assert_allclose(out.numpy(), float32_out.double().numpy(), atol=1e-5)


@pytest.mark.parametrize("hidden", [(), (7,), (16, 8), (4, 4, 4)])
@pytest.mark.parametrize(("n", "d"), [(1, 1), (5, 3), (2, 10)])
def test_velocity_mlp_shapes(hidden, n, d):
    torch.manual_seed(0)
    model = VelocityMLP(d, hidden, "silu")
    t, x = _inputs(n, d)
    out = model(t, x)
    assert out.shape == (n, d)
    assert out.dtype == torch.float32
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == len(hidden) + 1
    widths = [d + model.time_embedding.n_features, *hidden, d]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip(widths[:-1], widths[1:]))


@pytest.mark.parametrize(
    "make",
    [lambda: VelocityMLP(3, (16, 16), "tanh"), lambda: VelocityBlockMLP(3, (16, 16, 16), "gelu")],
    ids=["mlp", "block"],
)
def test_velocity_networks_depend_on_time_and_state_row_by_row(make):
    torch.manual_seed(1)
    model = make()
    t, x = _inputs(6, 3)
    out = model(t, x)
    assert out.shape == (6, 3)
    assert not torch.allclose(model(t + 0.1, x), out)
    assert not torch.allclose(model(t, x + 0.1), out)
    # each row depends on its own (t, x) only
    for i in (0, 5):
        torch.testing.assert_close(model(t[i : i + 1], x[i : i + 1]), out[i : i + 1])
    # gradients reach every parameter
    model(t, x).pow(2).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_builds(activation):
    torch.manual_seed(2)
    model = VelocityMLP(2, (8, 8), activation)
    activations = [m for m in model.modules() if isinstance(m, ACTIVATIONS[activation])]
    assert len(activations) == 2
    t, x = _inputs(4, 2)
    out = model(t, x)
    assert out.shape == (4, 2)
    assert torch.isfinite(out).all()


def test_activation_registry():
    assert ACTIVATIONS == {
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "softplus": nn.Softplus,
        "relu": nn.ReLU,
    }
    with pytest.raises(KeyError):
        VelocityMLP(2, (4,), "no-such-activation")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_float64_conversion(activation):
    torch.manual_seed(3)
    model32 = VelocityMLP(3, (12, 12), activation)
    t, x = _inputs(5, 3)
    out32 = model32(t, x)
    model64 = model32.double()
    assert all(p.dtype == torch.float64 for p in model64.parameters())
    assert model64.time_embedding.frequencies.dtype == torch.float64
    out64 = model64(t.double(), x.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, out32.double(), rtol=1e-5, atol=1e-5)


# --- block network -------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [(7,), (16, 8), (6, 6, 6)])
def test_block_network_follows_its_formula(hidden):
    """h = act(W_0 [x, e]); h <- h + act(W_k [LN(h), e]) where the width is kept (else the update
    alone); v = W_last h, written out with torch's functional layers."""
    torch.manual_seed(4)
    block = VelocityBlockMLP(3, hidden, "gelu")
    t, x = _inputs(5, 3)
    e = block.time_embedding(t)
    h = nn.functional.gelu(nn.functional.linear(torch.cat([x, e], 1), *_weights(block.first)))
    for norm, linear in zip(block.norms, block.blocks):
        normed = nn.functional.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias)
        update = nn.functional.gelu(
            nn.functional.linear(torch.cat([normed, e], 1), *_weights(linear))
        )
        h = h + update if update.shape == h.shape else update
    torch.testing.assert_close(block(t, x), nn.functional.linear(h, *_weights(block.last)))


def _weights(linear):
    return linear.weight, linear.bias


def test_block_network_skips_pass_a_zero_block_through():
    torch.manual_seed(5)
    block = VelocityBlockMLP(2, (8, 8, 8), "gelu")
    t, x = _inputs(4, 2)
    with torch.no_grad():
        for linear in block.blocks:
            linear.weight.zero_()
            linear.bias.zero_()
    embedding = block.time_embedding(t)
    first = block.activation(block.first(torch.cat([x, embedding], dim=1)))
    torch.testing.assert_close(block(t, x), block.last(first))  # GELU(0) = 0: blocks add nothing


def test_block_network_shapes_its_blocks():
    block = VelocityBlockMLP(3, (10, 12, 12), "silu")
    n_time = block.time_embedding.n_features
    norms = [m for m in block.modules() if isinstance(m, nn.LayerNorm)]
    assert [m.normalized_shape for m in norms] == [(10,), (12,)]
    assert [(m.in_features, m.out_features) for m in block.blocks] == [
        (10 + n_time, 12),
        (12 + n_time, 12),
    ]
    assert (block.first.in_features, block.last.out_features) == (3 + n_time, 3)


def test_architecture_registry():
    assert ARCHITECTURES == {"mlp": VelocityMLP, "residual": VelocityBlockMLP}


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_fourier_feature_velocity_feeds_its_network_sines_and_cosines(architecture):
    torch.manual_seed(0)
    d, m = 3, 5
    model = FourierFeatureVelocity(architecture, d, (16, 16), "gelu", n_frequencies=m, scale=2.0)
    assert model.frequencies.shape == (d, m)
    assert "frequencies" in dict(model.named_buffers())
    assert "frequencies" not in dict(model.named_parameters())  # fixed, not trained
    t, x = _inputs(7, d)
    angles = x @ model.frequencies
    by_hand = model.network(t, torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1))
    torch.testing.assert_close(model(t, x), by_hand)
    assert model(t, x).shape == (7, d)
    first = model.network.layers[0] if architecture == "mlp" else model.network.first
    assert first.in_features == d + 2 * m + TimeEmbedding().n_features
    # the same seed draws the same B
    torch.manual_seed(0)
    again = FourierFeatureVelocity(architecture, d, (16, 16), "gelu", n_frequencies=m, scale=2.0)
    torch.testing.assert_close(again.frequencies, model.frequencies)


def test_fourier_frequencies_scale_with_the_dimension():
    torch.manual_seed(0)
    for d in (2, 32):
        model = FourierFeatureVelocity("mlp", d, (8,), "gelu", n_frequencies=4000, scale=3.0)
        # each phase x B_k of a standard normal x has standard deviation scale, whatever d
        std = model.frequencies.std().item()
        assert abs(std - 3.0 / np.sqrt(d)) < 0.03 * 3.0 / np.sqrt(d), (d, std)


@pytest.mark.parametrize("n_fourier_features", [0, 4])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_class_conditional_network_sees_the_one_hot_class(architecture, n_fourier_features):
    spec = NetworkSpec(architecture, (8, 8), "gelu", n_fourier_features=n_fourier_features)
    conditional = replace(spec, n_classes=3)
    torch.manual_seed(0)
    network = conditional.build(2)
    assert isinstance(network, ClassConditionalVelocity)
    # the inner network is the unconditional one, of d + K inputs and d outputs
    assert isinstance(network.network, type(spec.build(5)))
    t, x = _inputs(n=6, d=2)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    one_hot = torch.eye(3)[labels]
    by_hand = network.network(t, torch.cat([x, one_hot], dim=1))
    assert by_hand.shape == (6, 2)
    torch.testing.assert_close(network(t, x, labels), by_hand)
    torch.testing.assert_close(ConditionedVelocity(network, labels)(t, x), by_hand)
    # one label for every row; different classes, different fields
    torch.testing.assert_close(network(t, x, torch.tensor(2)), network(t, x, torch.full((6,), 2)))
    assert not torch.allclose(network(t, x, torch.tensor(0)), network(t, x, torch.tensor(1)))


@pytest.mark.parametrize("condition", [{"n_classes": 2}, {"masked": True}])
def test_conditional_network_has_no_denoiser(condition):
    with pytest.raises(ValueError, match="conditional"):
        NetworkSpec("mlp", (8,), "gelu", denoiser=True, **condition).build(2)


def test_masked_spec_builds_a_field_of_x_and_both_masks():
    network = NetworkSpec("residual", (8,), "gelu", masked=True).build(3)
    x, masks = torch.randn(5, 3), torch.ones(5, 6)
    assert network(torch.rand(5), x, masks).shape == (5, 3)
    assert network.network.first.in_features == 9 + network.network.time_embedding.n_features
