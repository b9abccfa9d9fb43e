"""Tests of fxdsp.scheduler.ProbabilityScheduler: direction, bounds, fixed point, resume, logs."""

from __future__ import annotations

import math
import random

import pytest

from fxdsp.scheduler import DEFAULT_EFFECTS, DEFAULT_INITIAL, ProbabilityScheduler

# A fixed "encoder": imager is the hardest effect, eq the easiest.
SCORES = {
    "eq": 0.95,
    "compressor": 0.85,
    "pan": 0.7,
    "imager": 0.4,
    "reverb": 0.8,
    "gain": 0.75,
}


def _noisy_scores(rng: random.Random) -> dict[str, float]:
    return {e: min(max(s + rng.uniform(-0.05, 0.05), 0.0), 1.0) for e, s in SCORES.items()}


def test_hardest_rises_easiest_falls_and_bounds_hold() -> None:
    sched = ProbabilityScheduler()
    start = sched.probabilities
    assert start == DEFAULT_INITIAL
    rng = random.Random(0)
    imager, eq = [start["imager"]], [start["eq"]]
    for _ in range(200):
        probs = sched.update(_noisy_scores(rng))
        assert set(probs) == set(DEFAULT_EFFECTS)
        for p in probs.values():
            assert 0.1 <= p <= 0.95
        imager.append(probs["imager"])
        eq.append(probs["eq"])
    assert imager[-1] > start["imager"] + 0.1
    assert eq[-1] < start["eq"] - 0.2
    # Monotone after the EMA settles (noise is small against the score gaps).
    assert imager[-1] >= imager[20] and eq[-1] <= eq[20]


def test_bounds_with_extreme_scores() -> None:
    sched = ProbabilityScheduler(p_min=0.2, p_max=0.6, initial=dict.fromkeys(DEFAULT_EFFECTS, 0.4))
    for k in range(300):
        probs = sched.update({e: float((k + i) % 2) for i, e in enumerate(DEFAULT_EFFECTS)})
        assert all(0.2 <= p <= 0.6 for p in probs.values())
    sched = ProbabilityScheduler(step=1.0, momentum=0.0, temperature=1e-3)
    probs = sched.update({"imager": 0.0, "eq": 1.0})
    assert probs["imager"] <= 0.95 and probs["eq"] >= 0.1
    assert probs["imager"] == pytest.approx(0.95, abs=1e-3)
    assert probs["eq"] == pytest.approx(0.1, abs=1e-3)


def test_constant_scores_converge_to_closed_form_fixed_point() -> None:
    p_min, p_max, tau = 0.1, 0.95, 0.1
    sched = ProbabilityScheduler(p_min=p_min, p_max=p_max, momentum=0.9, step=0.1, temperature=tau)
    for _ in range(600):
        probs = sched.update(SCORES)
    # Closed form: d_e = 1 - s_e; t_e = p_min + (p_max - p_min) σ(logit(u0_e) + (d_e - d̄)/τ).
    diff = {e: 1.0 - s for e, s in SCORES.items()}
    mean = sum(diff.values()) / len(diff)
    for e, d in diff.items():
        u0 = (DEFAULT_INITIAL[e] - p_min) / (p_max - p_min)
        z = math.log(u0 / (1 - u0)) + (d - mean) / tau
        expected = p_min + (p_max - p_min) / (1 + math.exp(-z))
        assert probs[e] == pytest.approx(expected, abs=1e-9), e
    # A fixed point: one more update changes nothing.
    again = sched.update(SCORES)
    assert max(abs(again[e] - probs[e]) for e in probs) < 1e-12


def test_equal_scores_keep_initial_probabilities() -> None:
    sched = ProbabilityScheduler()
    for _ in range(50):
        probs = sched.update(dict.fromkeys(DEFAULT_EFFECTS, 0.6))
    for e in DEFAULT_EFFECTS:
        assert probs[e] == pytest.approx(DEFAULT_INITIAL[e], abs=1e-12)


def test_state_dict_round_trip_continues_exactly() -> None:
    rng = random.Random(1)
    seq = [_noisy_scores(rng) for _ in range(60)]
    a = ProbabilityScheduler(momentum=0.8, step=0.2)
    for s in seq[:25]:
        a.update(s)
    state = a.state_dict()
    b = ProbabilityScheduler()  # other configuration: the state restores it
    b.load_state_dict(state)
    assert b.probabilities == a.probabilities and b.difficulty == a.difficulty
    assert b.momentum == 0.8 and b.step == 0.2 and b.num_updates == 25
    for s in seq[25:]:
        assert a.update(s) == b.update(s)  # bitwise identical trajectories
    with pytest.raises(ValueError, match="format"):
        b.load_state_dict({"probabilities": {}})


def test_probabilities_feed_sample_params() -> None:
    manipulator = pytest.importorskip("fxdsp.manipulator")
    sched = ProbabilityScheduler()
    sched.update(SCORES)
    params = manipulator.sample_params(8, probabilities=sched.probabilities)
    assert params is not None and len(params.active) == 8


def test_log_to_writes_tensorboard_events(tmp_path) -> None:
    tensorboard = pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sched = ProbabilityScheduler()
    writer = tensorboard.SummaryWriter(log_dir=str(tmp_path))
    expected: dict[str, list[float]] = {e: [] for e in DEFAULT_EFFECTS}
    for step in range(5):
        probs = sched.update(SCORES)
        sched.log_to(writer, step)
        for e in DEFAULT_EFFECTS:
            expected[e].append(probs[e])
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for e in DEFAULT_EFFECTS:
        assert f"fx_prob/{e}" in tags and f"fx_difficulty/{e}" in tags
        events = acc.Scalars(f"fx_prob/{e}")
        assert [ev.step for ev in events] == list(range(5))
        # TensorBoard stores float32.
        assert [ev.value for ev in events] == pytest.approx(expected[e], abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p_min": 0.9, "p_max": 0.2}, "greater than"),
        ({"effects": ("eq", "flanger")}, "unknown effect"),
        ({"effects": ("eq", "eq")}, "duplicates"),
        ({"initial": {"eq": 0.99}}, "outside"),
        ({"initial": {"chorus": 0.5}}, "unknown effect"),
        ({"momentum": 1.0}, "momentum"),
        ({"step": 0.0}, "step"),
        ({"temperature": -1.0}, "temperature"),
        ({"p_max": 1.5}, r"\[0, 1\]"),
    ],
)
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProbabilityScheduler(**kwargs)


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        ({"flanger": 0.5}, "unknown effect"),
        ({"eq": 1.5}, r"\[0, 1\]"),
        ({"eq": -0.1}, r"\[0, 1\]"),
        ({"eq": float("nan")}, "finite"),
        ({"eq": "high"}, "number"),
    ],
)
def test_bad_scores_raise_and_change_nothing(scores: dict, match: str) -> None:
    sched = ProbabilityScheduler()
    sched.update({"pan": 0.2})
    before = sched.state_dict()
    with pytest.raises(ValueError, match=match):
        sched.update({"pan": 0.3, **scores})
    assert sched.state_dict() == before


def _trained_state() -> dict:
    sched = ProbabilityScheduler()
    for _ in range(3):
        sched.update(SCORES)
    return sched.state_dict()


@pytest.mark.parametrize(
    ("field", "effect", "value", "match"),
    [
        ("difficulty", "eq", float("nan"), "difficulty of 'eq'.*finite"),
        ("difficulty", "pan", float("inf"), "difficulty of 'pan'.*finite"),
        ("difficulty", "gain", -0.5, r"difficulty of 'gain'.*\[0, 1\]"),
        ("difficulty", "gain", "hard", "difficulty of 'gain'.*number"),
        ("probabilities", "eq", float("nan"), "probability of 'eq'.*finite"),
        ("probabilities", "imager", 0.99, "probability of 'imager'.*outside"),
        ("num_updates", None, -1, "num_updates"),
        ("num_updates", None, "seven", "num_updates"),
        ("num_updates", None, 2.5, "num_updates"),
        ("config", None, [1, 2], "config"),
        ("probabilities", None, None, "probabilities"),
    ],
)
def test_load_state_dict_rejects_bad_values_and_changes_nothing(
    field: str, effect: str | None, value: object, match: str
) -> None:
    sched = ProbabilityScheduler(momentum=0.5)
    sched.update({"pan": 0.2, "eq": 0.9})
    before = sched.state_dict()
    state = _trained_state()
    if effect is None:
        state[field] = value
    else:
        state[field] = {**state[field], effect: value}
    with pytest.raises(ValueError, match=match):
        sched.load_state_dict(state)
    assert sched.state_dict() == before  # atomic: nothing assigned before the error
    assert sched.momentum == 0.5 and sched.num_updates == 1


def test_load_state_dict_nan_difficulty_never_reaches_probabilities() -> None:
    # Before the fix a NaN difficulty loaded silently and every probability became NaN at the
    # next update; now the load refuses and the scheduler keeps finite probabilities.
    sched = ProbabilityScheduler()
    state = _trained_state()
    state["difficulty"] = {**state["difficulty"], "reverb": float("nan")}
    with pytest.raises(ValueError):
        sched.load_state_dict(state)
    probs = sched.update(SCORES)
    assert all(0.1 <= p <= 0.95 for p in probs.values())


def test_difficulty_is_the_momentum_weighted_average_of_two_different_scores() -> None:
    """d ← μ·d + (1 − μ)·(1 − s): with two different scores the weights matter (and μ ≠ 0.5)."""
    mu, p_min, p_max, tau, eta = 0.7, 0.1, 0.95, 0.1, 0.1
    sched = ProbabilityScheduler(p_min=p_min, p_max=p_max, momentum=mu, step=eta, temperature=tau)
    sched.update({"eq": 0.2, "imager": 0.9})
    assert sched.difficulty["eq"] == pytest.approx(0.8, abs=1e-15)  # the first score sets d
    probs = sched.update({"eq": 0.6, "imager": 0.5})
    d_eq = mu * 0.8 + (1 - mu) * 0.4  # 0.68 (swapped weights would give 0.52)
    d_im = mu * 0.1 + (1 - mu) * 0.5  # 0.22
    assert sched.difficulty["eq"] == pytest.approx(d_eq, abs=1e-15)
    assert sched.difficulty["imager"] == pytest.approx(d_im, abs=1e-15)
    assert sched.difficulty["pan"] is None  # never scored

    # The probabilities after the two steps, written out from the module's equations.
    def target(e: str, diff: dict[str, float]) -> float:
        if e not in diff:
            return DEFAULT_INITIAL[e]
        mean = sum(diff.values()) / len(diff)
        u0 = (DEFAULT_INITIAL[e] - p_min) / (p_max - p_min)
        z = math.log(u0 / (1 - u0)) + (diff[e] - mean) / tau
        return p_min + (p_max - p_min) / (1 + math.exp(-z))

    first = {"eq": 0.8, "imager": 0.1}
    second = {"eq": d_eq, "imager": d_im}
    for e in DEFAULT_EFFECTS:
        p = DEFAULT_INITIAL[e]
        p += eta * (target(e, first) - p)
        p += eta * (target(e, second) - p)
        assert probs[e] == pytest.approx(p, abs=1e-12), e


def test_difficulty_is_the_documented_moving_average_of_two_different_scores() -> None:
    """d = 1 - s0 after the first score, then d = m·d + (1 - m)·(1 - s1): with two different
    scores the weights matter (constant scores, the other tests' case, hide a swap)."""
    m = 0.8
    sched = ProbabilityScheduler(momentum=m, step=0.3)
    sched.update({"eq": 0.9, "gain": 0.2})
    assert sched.difficulty["eq"] == pytest.approx(0.1, abs=1e-15)
    sched.update({"eq": 0.4, "gain": 0.2})
    assert sched.difficulty["eq"] == pytest.approx(m * 0.1 + (1 - m) * 0.6, abs=1e-15)
    assert sched.difficulty["gain"] == pytest.approx(0.8, abs=1e-15)
    assert sched.difficulty["pan"] is None  # never scored
    # ... and the probabilities moved a step of 0.3 towards the target of those difficulties.
    before = dict(sched.probabilities)
    target = sched.target()
    after = sched.update({"eq": 0.4})
    d_eq = m * (m * 0.1 + (1 - m) * 0.6) + (1 - m) * 0.6
    assert sched.difficulty["eq"] == pytest.approx(d_eq, abs=1e-15)
    new_target = sched.target()
    for e in after:
        want = min(max(before[e] + 0.3 * (new_target[e] - before[e]), 0.1), 0.95)
        assert after[e] == pytest.approx(want, abs=1e-12), e
    assert new_target != target
