"""cloner.loss: the multi-scale spectral loss (against auraloss, a float64 loop and closed forms;
silence, batching, gradients) and the embedding loss through a frozen encoder."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cloner.loss import DEFAULT_FFT_SIZES, MultiScaleSpectralLoss, embedding_loss, mss_loss

ROOT = Path(__file__).resolve().parents[1]
LN10_SQ = math.log(10.0) ** 2


def _noise(*shape: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Against auraloss (bench/dev extra): exact where the definitions coincide


def _auraloss_pair(kind: str, sizes: tuple[int, ...]) -> tuple[torch.nn.Module, torch.nn.Module]:
    """auraloss' linear-L1 and log-L2 terms at our resolutions (float64 windows)."""
    auraloss = pytest.importorskip("auraloss")
    cls = getattr(auraloss.freq, kind)
    common = {
        "fft_sizes": list(sizes), "hop_sizes": [n // 4 for n in sizes],
        "win_lengths": list(sizes), "w_sc": 0.0, "eps": 1e-30,
    }  # fmt: skip
    lin = cls(**common, w_log_mag=0.0, w_lin_mag=1.0, mag_distance="L1")
    log = cls(**common, w_log_mag=1.0, w_lin_mag=0.0, mag_distance="L2")
    for module in (lin, log):
        inner = module.stft_losses if hasattr(module, "stft_losses") else module.mrstft.stft_losses
        for stft in inner:  # auraloss builds float32 windows; ours follow the input's dtype
            stft.window = torch.hann_window(stft.win_length, dtype=torch.float64)
    return lin, log


@pytest.mark.parametrize(
    ("channels", "kind"),
    [("lr", "MultiResolutionSTFTLoss"), ("ms", "SumAndDifferenceSTFTLoss")],
)
def test_equals_auraloss_terms_rescaled(channels: str, kind: str) -> None:
    """auraloss averages its resolutions (we sum, like the reference), takes ln (we log10) and
    one distance per instance: ours = n · (0.9 · A_lin,L1 + 0.1 · A_log,L2 / ln(10)²). Its
    sum/difference loss is (L + R, L − R), the reference's mid/side, averaged like ours. With
    a power floor far below every bin the two agree to float64 rounding."""
    y, t = _noise(3, 2, 9000, seed=1), _noise(3, 2, 9000, seed=2)
    t[1] = t[1] * torch.tensor([[1.0], [0.3]], dtype=torch.float64)  # a lopsided image
    lin, log = _auraloss_pair(kind, DEFAULT_FFT_SIZES)
    expected = len(DEFAULT_FFT_SIZES) * (0.9 * lin(y, t) + 0.1 * log(y, t) / LN10_SQ)
    got = mss_loss(y, t, channels=channels, eps=1e-30)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    # Each term on its own, too.
    only_mag = mss_loss(y, t, channels=channels, eps=1e-30, mag_weight=1.0, log_weight=0.0)
    assert float(only_mag) == pytest.approx(4 * float(lin(y, t)), rel=1e-12)


def test_default_eps_differs_from_auraloss_only_in_the_floor() -> None:
    """At the default floor (power + 1e-7) on audio at normal levels the difference from
    auraloss' clamp form is tiny, and our value is the larger in the log term only where the
    floor matters: measured below 1e-4 relative on 0.1-rms noise in float32."""
    y, t = _noise(2, 2, 9000, seed=3, dtype=torch.float32), _noise(2, 2, 9000, seed=4)
    lin, log = _auraloss_pair("MultiResolutionSTFTLoss", DEFAULT_FFT_SIZES)
    expected = 4 * (0.9 * lin(y.double(), t) + 0.1 * log(y.double(), t) / LN10_SQ)
    got = mss_loss(y, t.float())
    assert float(got) == pytest.approx(float(expected), rel=1e-4)


def test_library_code_does_not_import_auraloss() -> None:
    code = "import sys, cloner, cloner.loss; assert 'auraloss' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------------
# A float64 loop of the definition (numpy FFT, frame by frame)


def _loop_mss(y: np.ndarray, t: np.ndarray, channels: str, sizes, eps: float = 1e-7) -> float:
    if channels == "ms":
        y = np.stack([y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]], axis=1)
        t = np.stack([t[:, 0] + t[:, 1], t[:, 0] - t[:, 1]], axis=1)
    total = 0.0
    for n in sizes:
        hop = n // 4
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
        mag_sum, log_sum, count = 0.0, 0.0, 0
        for b in range(y.shape[0]):
            for c in range(y.shape[1]):
                py = np.pad(y[b, c], n // 2, mode="reflect")
                pt = np.pad(t[b, c], n // 2, mode="reflect")
                frames = 1 + (len(py) - n) // hop
                for f in range(frames):
                    sy = np.fft.rfft(window * py[f * hop : f * hop + n])
                    st = np.fft.rfft(window * pt[f * hop : f * hop + n])
                    my = np.sqrt(np.abs(sy) ** 2 + eps)
                    mt = np.sqrt(np.abs(st) ** 2 + eps)
                    mag_sum += np.abs(my - mt).sum()
                    log_sum += np.square(np.log10(my) - np.log10(mt)).sum()
                    count += len(my)
        total += 0.9 * mag_sum / count + 0.1 * log_sum / count
    return total


@pytest.mark.parametrize("channels", ["lr", "ms"])
def test_matches_a_float64_loop_with_silence_in_it(channels: str) -> None:
    """The whole definition, floor included: a target whose side is silent (L = R) and an
    output with a silent stretch, where the floor √eps decides the log term."""
    y, t = _noise(2, 2, 1500, seed=5), _noise(2, 1, 1500, seed=6).repeat(1, 2, 1)
    y[:, :, 300:900] = 0.0
    sizes = (256, 128)
    got = float(mss_loss(y, t, channels=channels, fft_sizes=sizes))
    assert got == pytest.approx(_loop_mss(y.numpy(), t.numpy(), channels, sizes), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Closed forms


def test_a_gain_gives_the_closed_form() -> None:
    """y = g · t (with the floor negligible): Σ_N [0.9 |g − 1| mean|T_N| + 0.1 (log10 g)²]."""
    t = _noise(2, 2, 8192, seed=7)
    g = 0.5
    expected = 0.0
    for n in DEFAULT_FFT_SIZES:
        spec = torch.stft(t.reshape(4, -1), n, n // 4, window=torch.hann_window(n,
                          dtype=torch.float64), return_complex=True)  # fmt: skip
        expected += 0.9 * abs(g - 1) * float(spec.abs().mean()) + 0.1 * math.log10(g) ** 2
    got = float(mss_loss(g * t, t, eps=1e-30))
    assert got == pytest.approx(expected, rel=1e-10)
    assert float(mss_loss(t, t)) == 0.0


def test_mid_side_ignores_a_left_right_swap() -> None:
    """Swapping L and R keeps the mid and flips the side's sign: same magnitudes, M/S loss 0,
    while the L/R loss sees the swap."""
    t = _noise(2, 2, 6000, seed=8)
    swapped = t.flip(1)
    assert float(mss_loss(swapped, t, channels="ms")) < 1e-12
    assert float(mss_loss(swapped, t, channels="lr")) > 0.5
    # Mid/side of a mono target: a pure mid output (L = R) has the side term exactly 0 there.
    mono = t[:, :1].repeat(1, 2, 1)
    louder = mss_loss(2 * mono, mono, channels="ms", eps=1e-30, fft_sizes=(512,))
    spec = torch.stft(2 * mono[:, 0], 512, 128, window=torch.hann_window(512,
                      dtype=torch.float64), return_complex=True)  # fmt: skip
    # mid = 2·t ⇒ |M_y − M_t| = |2T| per bin, averaged with a zero side over both channels.
    expected = 0.5 * (0.9 * float(spec.abs().mean()) + 0.1 * math.log10(2) ** 2)
    assert float(louder) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Silence, gradients, batching


@pytest.mark.parametrize("channels", ["lr", "ms"])
def test_silent_outputs_and_targets_are_finite_with_finite_gradients(channels: str) -> None:
    zeros = torch.zeros(2, 2, 5000)
    noise = _noise(2, 2, 5000, seed=9, dtype=torch.float32)
    assert float(mss_loss(zeros, zeros, channels=channels)) == 0.0
    for y0, t in ((zeros, noise), (noise, zeros), (zeros, zeros)):
        y = y0.clone().requires_grad_(True)
        loss = mss_loss(y, t, channels=channels)
        loss.backward()
        assert torch.isfinite(loss) and bool(torch.isfinite(y.grad).all())
    # A silent target against noise: the log term sees the floor, log10(|Y| / √eps), bounded.
    assert 1.0 < float(mss_loss(noise, zeros, channels=channels)) < 1e3


def test_gradcheck_float64() -> None:
    y = _noise(2, 2, 300, seed=10).requires_grad_(True)
    t = _noise(2, 2, 300, seed=11)
    crit = MultiScaleSpectralLoss(fft_sizes=(64, 32))
    assert torch.autograd.gradcheck(lambda x: crit(x, t), (y,), eps=1e-6, atol=1e-6, fast_mode=True)
    each = MultiScaleSpectralLoss(fft_sizes=(64, 32), lr_weight=0.3, ms_weight=1.7)
    assert torch.autograd.gradcheck(
        lambda x: each(x, t, reduction="none"), (y,), eps=1e-6, atol=1e-6, fast_mode=True
    )


@pytest.mark.parametrize("channels", ["lr", "ms"])
def test_hand_written_backward_equals_autograd(channels: str) -> None:
    """Against a constant target the loss runs a fused forward with a hand-written backward;
    a target that wants gradients takes plain autograd. Both give one value and one gradient
    for ``y`` (and the target gets its gradient in the second case)."""
    y, t = _noise(2, 2, 3000, seed=18), _noise(2, 2, 3000, seed=19)
    t[1, :, 1000:2000] = 0.0  # the floor, and sign(0) in the L1 term
    sizes = (512, 128)
    y1 = y.clone().requires_grad_(True)
    fused = mss_loss(y1, t, channels=channels, fft_sizes=sizes, reduction="none")
    (fused * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum().backward()
    y2, t2 = y.clone().requires_grad_(True), t.clone().requires_grad_(True)
    plain = mss_loss(y2, t2, channels=channels, fft_sizes=sizes, reduction="none")
    (plain * torch.tensor([1.0, 3.0], dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(fused, plain.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-9, atol=1e-15)
    assert t2.grad is not None and float(t2.grad.abs().max()) > 0


def test_batch_items_are_independent_and_the_mean_is_their_mean() -> None:
    y, t = _noise(4, 2, 5000, seed=12), _noise(4, 2, 5000, seed=13)
    crit = MultiScaleSpectralLoss()
    per_item = crit(y, t, reduction="none")
    assert per_item.shape == (4,)
    for i in range(4):
        alone = crit(y[i : i + 1], t[i : i + 1])
        assert float(per_item[i]) == pytest.approx(float(alone), rel=1e-12)
    assert float(crit(y, t)) == pytest.approx(float(per_item.mean()), rel=1e-12)
    for channels in ("lr", "ms"):
        each = mss_loss(y, t, channels=channels, reduction="none")
        assert float(each.mean()) == pytest.approx(float(mss_loss(y, t, channels=channels)))


def test_module_is_the_weighted_sum_of_the_two_terms() -> None:
    y, t = _noise(2, 2, 5000, seed=14), _noise(2, 2, 5000, seed=15)
    terms = MultiScaleSpectralLoss().terms(y, t)
    assert float(terms["lr"]) == pytest.approx(float(mss_loss(y, t, channels="lr")), rel=1e-12)
    assert float(terms["ms"]) == pytest.approx(float(mss_loss(y, t, channels="ms")), rel=1e-12)
    weighted = MultiScaleSpectralLoss(lr_weight=0.25, ms_weight=2.0)
    expected = 0.25 * float(terms["lr"]) + 2.0 * float(terms["ms"])
    assert float(weighted(y, t)) == pytest.approx(expected, rel=1e-12)
    assert float(weighted.combine(terms)) == pytest.approx(expected, rel=1e-12)
    only_lr = MultiScaleSpectralLoss(ms_weight=0.0, fft_sizes=(1024, 256))
    assert float(only_lr(y, t)) == pytest.approx(
        float(mss_loss(y, t, fft_sizes=(1024, 256))), rel=1e-12
    )
    assert "fft_sizes=(1024, 256)" in repr(only_lr)


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.zeros(1, 2, 5000)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        mss_loss(torch.zeros(2, 5000), torch.zeros(2, 5000))
    with pytest.raises(ValueError, match="differ in shape"):
        mss_loss(x, torch.zeros(1, 2, 4999))
    with pytest.raises(ValueError, match="stereo"):
        mss_loss(x[:, :1], x[:, :1], channels="ms")
    with pytest.raises(ValueError, match="at least 2049 samples"):
        mss_loss(x[..., :2048], x[..., :2048])
    mss_loss(x[..., :2049], x[..., :2049])  # the shortest length reflection padding allows
    with pytest.raises(ValueError, match="channels must be one of"):
        mss_loss(x, x, channels="xy")
    with pytest.raises(ValueError, match="floating point"):
        mss_loss(x.long(), x.long())
    with pytest.raises(ValueError, match="fft_sizes"):
        MultiScaleSpectralLoss(fft_sizes=())
    with pytest.raises(ValueError, match="both 0"):
        MultiScaleSpectralLoss(lr_weight=0.0, ms_weight=0.0)
    with pytest.raises(ValueError, match="eps"):
        mss_loss(x, x, eps=0.0)


# ---------------------------------------------------------------------------------------------
# Embedding loss


def test_embedding_loss_reaches_y_and_never_the_frozen_encoder() -> None:
    from fxencoder import FXEncoder, FXEncoderConfig

    torch.manual_seed(0)
    encoder = FXEncoder(FXEncoderConfig.preset("tiny")).train()
    stats = {k: v.clone() for k, v in encoder.state_dict().items()}
    x = _noise(3, 2, 22050, seed=16, dtype=torch.float32)
    target = _noise(3, 2, 22050, seed=17, dtype=torch.float32)
    y = x.clone().requires_grad_(True)
    loss = embedding_loss(encoder, y, target)
    loss.backward()
    assert (
        y.grad is not None and bool(torch.isfinite(y.grad).all()) and float(y.grad.abs().max()) > 0
    )
    assert all(p.grad is None for p in encoder.parameters())
    assert encoder.training  # the mode is restored
    for k, v in encoder.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(v, stats[k]), k
    # The value: 1 − cos of the eval-mode embeddings, in [0, 2]; 0 against itself.
    with torch.no_grad():
        e_y, e_t = encoder.eval()(x), encoder(target)
    encoder.train()
    cos = torch.nn.functional.cosine_similarity(e_y, e_t, dim=1)
    assert loss.item() == pytest.approx(float((1 - cos).mean()), rel=1e-5)
    assert float(embedding_loss(encoder, x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(embedding_loss(encoder, x, e_y)) == pytest.approx(0.0, abs=1e-6)
    l2 = embedding_loss(encoder, x, e_t, distance="l2")
    assert float(l2) == pytest.approx(float((e_y - e_t).norm(dim=1).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="distance"):
        embedding_loss(encoder, x, e_t, distance="l1")
    with pytest.raises(ValueError, match="items"):
        embedding_loss(encoder, x, e_t[:2])
