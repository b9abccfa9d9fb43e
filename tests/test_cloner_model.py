"""cloner.model: shapes, identity at initialization, the soft limiter, batch independence,
gradients, input checks, the receptive field measured with impulses, and the presets' sizes."""

from __future__ import annotations

import pytest
import torch

from cloner import ClonerConfig, MixFXCloner, soft_limit

SR = 44100
#: A waveform-rate (stride 1) TCN small enough for impulse experiments.
WAVE = ClonerConfig(cond_dim=4, channels=4, kernel=3, dilations=(1, 2, 4), stride=1, filters=4)
#: A frame-rate one with an odd kernel wider than 3 and uneven dilations.
FRAME = ClonerConfig(cond_dim=4, channels=4, kernel=5, dilations=(1, 3), stride=4, filters=6)


def _noise(*shape: int, seed: int = 0, level: float = 0.1) -> torch.Tensor:
    return level * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _randomized(config: ClonerConfig, seed: int = 0) -> MixFXCloner:
    """A model in eval mode whose every weight (the zero-initialized synthesis and FiLM maps
    included) and BatchNorm statistic is random: no path is trivially zero."""
    torch.manual_seed(seed)
    model = MixFXCloner(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Shapes, identity, sizes


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_output_shape_and_identity_at_init(name: str) -> None:
    """A fresh frame-rate model is the identity ("input unchanged") in both modes, for any
    condition and any length (also lengths that are not a multiple of the stride)."""
    cfg = ClonerConfig.preset(name)
    torch.manual_seed(0)
    model = MixFXCloner(cfg)
    for n in (cfg.stride * 40, cfg.stride * 40 + 3, 5):
        x = _noise(3, 2, n, seed=n)
        cond = _noise(3, cfg.cond_dim, seed=1, level=3.0)
        for mode in (True, False):
            model.train(mode)
            with torch.no_grad():
                y = model(x, cond)
            assert y.shape == (3, 2, n) and y.dtype == x.dtype
            assert torch.equal(y, x)  # |x| ≪ the knee: exactly the input
    # Mono input is duplicated to both channels.
    mono = _noise(2, 1, 700, seed=2)
    with torch.no_grad():
        assert torch.equal(model.eval()(mono, torch.zeros(2, cfg.cond_dim)), mono.repeat(1, 2, 1))


def test_a_trained_looking_model_uses_the_condition_and_keeps_shapes() -> None:
    model = _randomized(FRAME)
    x = _noise(2, 2, 1001)
    with torch.no_grad():
        a = model(x, _noise(2, 4, seed=1, level=1.0))
        b = model(x, _noise(2, 4, seed=2, level=1.0))
    assert a.shape == (2, 2, 1001) and float((a - b).abs().max()) > 1e-3


def test_correction_is_proportional_to_the_input() -> None:
    """Silence in gives silence out and the correction carries no fixed signal, for any
    weights: the frame-rate model's correction is a mask on the analysis frames plus a part
    scaled by their envelope (a model whose heads had biases emitted a fixed tone at the frame
    rate, −48 dBFS, from silence)."""
    model = _randomized(FRAME)
    cond = _noise(1, 4, seed=3, level=1.0)
    with torch.no_grad():
        assert torch.equal(model(torch.zeros(1, 2, 999), cond), torch.zeros(1, 2, 999))
        x = _noise(1, 2, 999, seed=4)
        loud = model(x, cond) - x
        quiet = model(1e-3 * x, cond) - 1e-3 * x
    ratio = quiet.square().sum().sqrt() / loud.square().sum().sqrt()
    assert float(loud.abs().max()) > 1e-3
    # Not exactly 1e-3 (BatchNorm's statistics are affine), but of that order: no fixed floor.
    assert 1e-4 < float(ratio) < 1e-2


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_filterbank_starts_as_an_mdct_pair_so_a_constant_mask_is_a_gain(name: str) -> None:
    """With ``filters = 2 · stride`` the analysis/synthesis pair starts as an MDCT (perfect
    reconstruction): a mask head fixed at ``g − 1`` makes the model a gain ``g``, exactly."""
    cfg = ClonerConfig.preset(name)
    model = MixFXCloner(cfg).eval()
    with torch.no_grad():
        model.out.bias.fill_(-0.75)  # gain 0.25 (−12 dB)
        x = _noise(2, 2, cfg.stride * 50 + 7, seed=5)
        y = model(x, _noise(2, cfg.cond_dim, seed=6, level=1.0))
    assert torch.allclose(y, 0.25 * x, atol=1e-6)
    # The basis itself against a float64 loop of its definition.
    import math

    from cloner.model import mdct_filterbank

    n_hop = 4
    basis = mdct_filterbank(n_hop).double()
    for k in range(n_hop):
        for n in range(2 * n_hop):
            want = (
                math.sqrt(2 / n_hop)
                * math.sin(math.pi * (n + 0.5) / (2 * n_hop))
                * math.cos(math.pi / n_hop * (n + 0.5 + n_hop / 2) * (k + 0.5))
            )
            assert float(basis[k, n]) == pytest.approx(want, abs=1e-6)


def test_parameter_counts_of_the_presets() -> None:
    paper = MixFXCloner(ClonerConfig.preset("paper"))
    # The reference's ≈ 10.5 M: 14 blocks × (conv 128·128·15 + FiLM 2048 → 256 + 1×1 + BN).
    assert 10.5e6 <= paper.num_parameters() <= 11.1e6
    per_block = (128 * 128 * 15 + 128) + (2048 * 256 + 256) + (128 * 128 + 128) + 2 * 128
    assert paper.num_parameters() == 14 * per_block + (2 * 128 + 128) + (128 * 2 + 2)
    assert 0.6e6 <= MixFXCloner(ClonerConfig.preset("small")).num_parameters() <= 0.7e6
    rf = ClonerConfig.preset("paper").receptive_field / SR
    assert rf == pytest.approx(5.2, abs=0.01)  # the paper's ≈ 5.2 s


# ---------------------------------------------------------------------------------------------
# The soft limiter


def test_soft_limit_bound_identity_and_continuity() -> None:
    limit = 4.0
    x = torch.linspace(-50.0, 50.0, 200001, dtype=torch.float64)
    y = soft_limit(x, limit)
    inside = x.abs() <= limit / 2
    assert torch.equal(y[inside], x[inside])  # identity up to the knee
    assert float(y.abs().max()) <= limit and bool(torch.isfinite(y).all())
    assert bool((y[1:] >= y[:-1]).all())
    near = x.abs() <= 12.0  # strictly increasing until tanh rounds to 1: no flat clip
    assert bool((y[near][1:] > y[near][:-1]).all()) and float(y[near].abs().max()) < limit
    torch.testing.assert_close(soft_limit(-x, limit), -y)  # odd
    # Continuous with slope 1 at the knee, from both sides.
    k, h = limit / 2, 1e-6
    knee = torch.tensor([k - h, k, k + h], dtype=torch.float64)
    v = soft_limit(knee, limit)
    assert float(v[2] - v[1]) == pytest.approx(h, rel=1e-5)
    assert float(v[1] - v[0]) == pytest.approx(h, rel=1e-9)
    # Far above: approaches the limit; huge and infinite inputs stay bounded.
    assert float(soft_limit(torch.tensor(12.0), limit)) == pytest.approx(
        k + k * torch.tanh(torch.tensor(5.0)).item(), rel=1e-6
    )
    extreme = soft_limit(torch.tensor([1e30, -1e30, float("inf")]), limit)
    assert extreme.tolist() == [limit, -limit, limit]
    x = torch.linspace(-10, 10, 101, dtype=torch.float64, requires_grad=True)
    soft_limit(x, limit).sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and float(x.grad.max()) == 1.0
    assert float(x.grad.min()) > 0.0


def test_model_output_is_bounded_by_the_limit() -> None:
    model = _randomized(FRAME.replace(output_limit=1.5))
    with torch.no_grad():
        y = model(_noise(2, 2, 800, level=50.0), _noise(2, 4, seed=3, level=10.0))
    assert float(y.abs().max()) <= 1.5 and bool(torch.isfinite(y).all())


# ---------------------------------------------------------------------------------------------
# Batch independence and gradients


@pytest.mark.parametrize("config", [FRAME, WAVE], ids=["stride4", "stride1"])
def test_batch_item_equals_item_alone_in_eval_mode(config: ClonerConfig) -> None:
    model = _randomized(config)
    x = _noise(4, 2, 999, seed=4)
    cond = _noise(4, 4, seed=5, level=1.0)
    with torch.no_grad():
        batch = model(x, cond)
        for i in range(4):
            torch.testing.assert_close(batch[i : i + 1], model(x[i : i + 1], cond[i : i + 1]),
                                       rtol=1e-5, atol=1e-6)  # fmt: skip


def test_gradients_are_finite_and_reach_every_parameter() -> None:
    model = _randomized(FRAME).train()
    x = _noise(3, 2, 640, seed=6).requires_grad_(True)
    cond = _noise(3, 4, seed=7, level=1.0).requires_grad_(True)
    y = model(x, cond)
    (y - 0.5 * x.detach()).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0, name
    assert bool(torch.isfinite(x.grad).all()) and bool(torch.isfinite(cond.grad).all())
    # Silence in, fresh model: finite gradients too (the heads start at zero).
    fresh = MixFXCloner(FRAME).train()
    z = torch.zeros(2, 2, 400, requires_grad=True)
    fresh(z, torch.zeros(2, 4)).square().sum().backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in fresh.parameters() if p.grad is not None)


def test_bad_inputs_raise_clear_errors() -> None:
    model = MixFXCloner(FRAME)
    x, cond = torch.zeros(2, 2, 100), torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"\(batch, 1 or 2, samples\)"):
        model(torch.zeros(2, 3, 100), cond)
    with pytest.raises(ValueError, match=r"\(batch, 1 or 2, samples\)"):
        model(torch.zeros(2, 100), cond)
    with pytest.raises(ValueError, match="floating point"):
        model(x.long(), cond)
    with pytest.raises(ValueError, match=r"cond must be \(batch, 4\)"):
        model(x, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"cond must be \(batch, 4\)"):
        model(x, torch.zeros(4))
    with pytest.raises(ValueError, match="2 items but cond has 3"):
        model(x, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="no samples"):
        model(torch.zeros(2, 2, 0), cond)
    with pytest.raises(ValueError, match="kernel must be odd"):
        ClonerConfig(kernel=4)


# ---------------------------------------------------------------------------------------------
# Receptive field, measured


@pytest.mark.parametrize(
    "config", [FRAME, WAVE, ClonerConfig.preset("tiny")], ids=["stride4", "stride1", "tiny"]
)
def test_receptive_field_by_impulses(config: ClonerConfig) -> None:
    """Perturb one input sample and see which outputs move (eval mode, every weight random):
    the span is ``config.receptive_field`` and centred (non-causal) within a stride, for every
    position of the sample relative to the frame grid."""
    model = _randomized(config)
    rf = config.receptive_field
    n = 4 * rf + 8 * config.stride
    x = _noise(1, 2, n, seed=8)
    cond = _noise(1, 4 if config.cond_dim == 4 else config.cond_dim, seed=9, level=1.0)
    centre = n // 2 - (n // 2) % config.stride
    with torch.no_grad():
        base = model(x, cond)
        for j in range(centre, centre + config.stride):
            moved = x.clone()
            moved[0, 0, j] += 0.05
            changed = torch.nonzero((model(moved, cond) - base).abs().amax(dim=1)[0] > 0)
            first, last = int(changed.min()) - j, int(changed.max()) - j
            assert last - first + 1 == rf, (j, first, last)
            assert abs(first + last) <= config.stride  # centred within a stride


# ---------------------------------------------------------------------------------------------
# The level head


def test_level_head_sets_the_output_rms_in_decibels() -> None:
    """With a level head the output is the TCN path at the input's RMS gained by ``g(cond)``
    dB: ``rms(y) / rms(x) = 10^(g/20)`` per item (a float64 loop in the test), whatever the
    path did to the level; a fresh head is 0 dB; silence stays silence; the head is bounded."""
    cfg = FRAME.replace(level_head=True, level_limit_db=12.0)
    model = _randomized(cfg)  # every weight random: the path changes the level, g ≠ 0
    x = _noise(3, 2, 800, seed=4, level=0.05)
    cond = _noise(3, 4, seed=5, level=1.0)
    with torch.no_grad():
        y = model(x, cond)
        u, g = model(x, cond, parts=True)
    assert u.shape == (3, 2, 800) and g.shape == (3,)
    assert float(g.abs().min()) > 0.1 and float(g.abs().max()) < 12.0
    for i in range(3):
        rx = sum(float(v) ** 2 for v in x[i].double().flatten()) ** 0.5
        ry = sum(float(v) ** 2 for v in y[i].double().flatten()) ** 0.5
        ru = sum(float(v) ** 2 for v in u[i].double().flatten()) ** 0.5
        assert abs(ru - rx) / rx > 1e-3  # the path alone would have moved the level
        assert ry / rx == pytest.approx(10 ** (float(g[i]) / 20), rel=1e-4)
        # The output is the path's own signal, only scaled.
        assert torch.allclose(y[i], u[i] * (ry / ru), atol=1e-6)
    # A fresh head changes nothing on level: 0 dB.
    torch.manual_seed(0)
    fresh = MixFXCloner(cfg).eval()
    with torch.no_grad():
        assert torch.equal(fresh.level_db(cond), torch.zeros(3))
        yf = fresh(x, cond)
    assert torch.allclose(yf.square().mean((1, 2)), x.square().mean((1, 2)), rtol=1e-5)
    # Bounded by ±level_limit_db whatever the condition; silence in, silence out, finite.
    with torch.no_grad():
        model.level[2].bias.fill_(1e4)
        assert torch.allclose(model.level_db(cond), torch.full((3,), 12.0))
        silent = model(torch.zeros(2, 2, 800), cond[:2])
    assert torch.equal(silent, torch.zeros(2, 2, 800))


def test_level_head_config_and_errors() -> None:
    # Checkpoints written before the level head load as models without one.
    old = FRAME.to_dict()
    del old["level_head"], old["level_limit_db"]
    assert ClonerConfig.from_dict(old).level_head is False
    with pytest.raises(ValueError, match="level_head must be true or false"):
        FRAME.replace(level_head=1)
    with pytest.raises(ValueError, match="level_limit_db"):
        FRAME.replace(level_head=True, level_limit_db=0.0)
    plain = MixFXCloner(FRAME)
    with pytest.raises(ValueError, match="needs a level head"):
        plain(_noise(1, 2, 100), torch.zeros(1, 4), parts=True)
    with pytest.raises(ValueError, match="has no level head"):
        plain.level_db(torch.zeros(1, 4))
    headed = MixFXCloner(FRAME.replace(level_head=True))
    assert headed.num_parameters() == plain.num_parameters() + 4 * 64 + 64 + 64 + 1
