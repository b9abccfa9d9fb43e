"""Probability scheduling of the random effect chain (the paper's Φp.s.).

During encoder training, effects that the encoder separates worst should be drawn more often.
:class:`ProbabilityScheduler` turns a measured per-effect score into application probabilities
for :func:`fxdsp.manipulator.sample_params`.

The rule, for every effect ``e`` (``s_e`` in [0, 1] is the trainer's score, e.g. the
contrastive accuracy on pairs that differ in effect ``e`` alone; higher = easier):

1. difficulty, an exponential moving average of the error rate::

       d_e ← μ · d_e + (1 − μ) · (1 − s_e)        (the first score of an effect sets d_e = 1 − s_e)

2. target probability, a logistic move away from the initial probability ``p0_e`` by how much
   harder than the average effect ``e`` is (``d̄`` = mean difficulty of the scored effects)::

       u0_e = (p0_e − p_min) / (p_max − p_min)                (clipped to [1e-3, 1 − 1e-3])
       t_e  = p_min + (p_max − p_min) · σ(logit(u0_e) + (d_e − d̄) / τ)

   Equal difficulties give back the initial probabilities; a harder-than-average effect moves
   towards ``p_max``, an easier one towards ``p_min``; the target always lies strictly inside
   ``(p_min, p_max)``.

3. a relaxation step towards the target::

       p_e ← p_e + η · (t_e − p_e)

With a constant score sequence, ``d_e → 1 − s_e`` geometrically and ``p_e`` converges to the
fixed point ``t_e`` evaluated at ``d_e = 1 − s_e``. Effects that have never been scored keep
their initial probability and take no part in ``d̄``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fxdsp._checks import as_number
from fxdsp.registry import EFFECTS

__all__ = ["DEFAULT_EFFECTS", "DEFAULT_INITIAL", "ProbabilityScheduler", "ScalarWriter"]

#: The effects of :mod:`fxdsp.manipulator` (the keys of ``sample_params(probabilities=...)``).
DEFAULT_EFFECTS: tuple[str, ...] = EFFECTS
#: The reference application probabilities; the reverb's (per stem in the reference: drums
#: 0.5, bass 0.01, other 0.7, vocals 0.9) is one float here, 0.5.
DEFAULT_INITIAL: dict[str, float] = {
    "eq": 0.9,
    "compressor": 0.9,
    "pan": 0.3,
    "imager": 0.8,
    "reverb": 0.5,
    "gain": 0.5,
}
_FORMAT = "fxdsp.ProbabilityScheduler/1"
_U_EPS = 1e-3


class ScalarWriter(Protocol):
    """Anything with TensorBoard's ``add_scalar(tag, value, step)`` (e.g. ``SummaryWriter``)."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> Any:
        """Record one scalar."""


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


def _state_number(value: object, name: str) -> float:
    """A finite float from a saved state (numpy/0-d torch scalars too; no bools or strings)."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def _logit(u: float) -> float:
    return math.log(u / (1.0 - u))


class ProbabilityScheduler:
    """Moves effect application probabilities towards the effects the encoder finds hardest.

    See the module docstring for the update equations.

    Args:
        effects: effect names, a subset of :data:`DEFAULT_EFFECTS` (default: all six).
        initial: initial probability per effect, in ``[p_min, p_max]`` (default
            :data:`DEFAULT_INITIAL` for the default effects; effects it does not name start at
            the middle of the band). Also the centre of the target rule.
        p_min: lowest probability an effect can get, in [0, 1].
        p_max: highest probability, in ``[p_min, 1]``.
        momentum: EMA factor ``μ`` of the difficulty, in [0, 1).
        step: relaxation step ``η`` towards the target, in (0, 1].
        temperature: ``τ`` > 0, difficulty difference (in error-rate units) that moves the
            target by one logit.

    Raises:
        ValueError: unknown or duplicate effects, an initial probability outside
            ``[p_min, p_max]``, ``p_min > p_max`` or any argument out of range.
    """

    def __init__(
        self,
        effects: Sequence[str] = DEFAULT_EFFECTS,
        initial: Mapping[str, float] | None = None,
        p_min: float = 0.1,
        p_max: float = 0.95,
        momentum: float = 0.9,
        step: float = 0.1,
        temperature: float = 0.1,
    ) -> None:
        if isinstance(effects, str) or not all(isinstance(e, str) for e in effects):
            raise ValueError(f"effects must be a sequence of names, got {effects!r}")
        effects = tuple(effects)
        if not effects:
            raise ValueError("effects must name at least one effect")
        if len(set(effects)) != len(effects):
            raise ValueError(f"effects has duplicates: {effects}")
        unknown_effects = set(effects) - set(DEFAULT_EFFECTS)
        if unknown_effects:
            raise ValueError(
                f"unknown effect(s) {sorted(unknown_effects)}; the chain's effects are "
                f"{DEFAULT_EFFECTS}"
            )
        p_min = as_number(p_min, "p_min")
        p_max = as_number(p_max, "p_max")
        if not 0.0 <= p_min <= 1.0 or not 0.0 <= p_max <= 1.0:
            raise ValueError(f"p_min and p_max must be in [0, 1], got {p_min}, {p_max}")
        if p_min > p_max:
            raise ValueError(f"p_min={p_min} is greater than p_max={p_max}")
        momentum = as_number(momentum, "momentum")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        step = as_number(step, "step")
        if not 0.0 < step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {step}")
        temperature = as_number(temperature, "temperature")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")

        if initial is None:
            initial = {e: DEFAULT_INITIAL.get(e, 0.5 * (p_min + p_max)) for e in effects}
        unknown = set(initial) - set(effects)
        if unknown:
            raise ValueError(f"initial names unknown effect(s) {sorted(unknown)}; known {effects}")
        init: dict[str, float] = {}
        for e in effects:
            p = as_number(initial.get(e, 0.5 * (p_min + p_max)), f"initial[{e!r}]")
            if not p_min <= p <= p_max:
                raise ValueError(
                    f"initial probability of {e!r} is {p}, outside [p_min, p_max] = "
                    f"[{p_min}, {p_max}]"
                )
            init[e] = p

        self.effects = effects
        self.p_min = p_min
        self.p_max = p_max
        self.momentum = momentum
        self.step = step
        self.temperature = temperature
        self.initial = init
        self._probabilities = dict(init)
        self._difficulty: dict[str, float | None] = dict.fromkeys(effects)
        self.num_updates = 0

    # ------------------------------------------------------------------------------------------
    @property
    def probabilities(self) -> dict[str, float]:
        """Current probability per effect (a copy; usable as ``sample_params(probabilities=)``)."""
        return dict(self._probabilities)

    @property
    def difficulty(self) -> dict[str, float | None]:
        """Current EMA difficulty ``d_e`` per effect (None before its first score)."""
        return dict(self._difficulty)

    def target(self, difficulty: Mapping[str, float | None] | None = None) -> dict[str, float]:
        """The target probability ``t_e`` for a difficulty per effect (default: the current one).

        Effects with no difficulty (never scored) get their initial probability.
        """
        diff = self._difficulty if difficulty is None else difficulty
        known = [float(d) for d in diff.values() if d is not None]
        mean = sum(known) / len(known) if known else 0.0
        band = self.p_max - self.p_min
        out: dict[str, float] = {}
        for e in self.effects:
            d = diff.get(e)
            if d is None or band == 0.0:
                out[e] = self.initial[e]
                continue
            u0 = min(max((self.initial[e] - self.p_min) / band, _U_EPS), 1.0 - _U_EPS)
            out[e] = self.p_min + band * _sigmoid(_logit(u0) + (d - mean) / self.temperature)
        return out

    def update(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Feed one measurement of per-effect scores and move the probabilities.

        Args:
            scores: ``{effect: score}``, each in [0, 1] (1 = the encoder separates that effect
                perfectly). A subset of the effects is fine; the others keep their difficulty.

        Returns:
            The new probabilities (same as :attr:`probabilities`).

        Raises:
            ValueError: an unknown effect, a non-number or a score outside [0, 1]. Nothing is
                changed when it raises.
        """
        if not isinstance(scores, Mapping):
            raise ValueError(f"scores must be a mapping effect -> score, got {type(scores)}")
        checked: dict[str, float] = {}
        for e, s in scores.items():
            if e not in self._difficulty:
                raise ValueError(f"unknown effect {e!r}; known effects: {self.effects}")
            s = as_number(s, f"score of {e!r}")
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"score of {e!r} must be in [0, 1], got {s}")
            checked[e] = s
        for e, s in checked.items():
            d = self._difficulty[e]
            err = 1.0 - s
            self._difficulty[e] = (
                err if d is None else self.momentum * d + (1 - self.momentum) * err
            )
        target = self.target()
        for e in self.effects:
            p = self._probabilities[e] + self.step * (target[e] - self._probabilities[e])
            self._probabilities[e] = min(max(p, self.p_min), self.p_max)
        self.num_updates += 1
        return self.probabilities

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: config, probabilities, difficulties, count."""
        return {
            "format": _FORMAT,
            "config": {
                "effects": list(self.effects),
                "initial": dict(self.initial),
                "p_min": self.p_min,
                "p_max": self.p_max,
                "momentum": self.momentum,
                "step": self.step,
                "temperature": self.temperature,
            },
            "probabilities": dict(self._probabilities),
            "difficulty": dict(self._difficulty),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (configuration included).

        Everything is validated before anything is assigned: when it raises, the scheduler is
        unchanged.

        Raises:
            ValueError: a state of another format or with other effects, a probability that is
                not a finite number in ``[p_min, p_max]``, a difficulty that is neither None nor
                a finite number in [0, 1], or a ``num_updates`` that is not an integer >= 0.
        """
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ValueError(f"not a ProbabilityScheduler state (expected format {_FORMAT!r})")
        for key in ("config", "probabilities", "difficulty"):
            if not isinstance(state.get(key), Mapping):
                raise ValueError(
                    f"state's {key!r} must be a mapping, got {type(state.get(key)).__name__}"
                )
        fresh = ProbabilityScheduler(**state["config"])  # validates the configuration
        probs = {
            e: _state_number(p, f"state's probability of {e!r}")
            for e, p in state["probabilities"].items()
        }
        diff = {
            e: (None if d is None else _state_number(d, f"state's difficulty of {e!r}"))
            for e, d in state["difficulty"].items()
        }
        if set(probs) != set(fresh.effects) or set(diff) != set(fresh.effects):
            raise ValueError("state's probabilities/difficulty do not name the configured effects")
        for e, p in probs.items():
            if not fresh.p_min <= p <= fresh.p_max:
                raise ValueError(
                    f"state's probability of {e!r} ({p}) is outside [p_min, p_max] = "
                    f"[{fresh.p_min}, {fresh.p_max}]"
                )
        for e, d in diff.items():
            if d is not None and not 0.0 <= d <= 1.0:
                raise ValueError(f"state's difficulty of {e!r} ({d}) is outside [0, 1]")
        count = state.get("num_updates")
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(f"state's num_updates must be an integer >= 0, got {count!r}")
        # Validated: assign.
        fresh._probabilities = {e: probs[e] for e in fresh.effects}
        fresh._difficulty = {e: diff[e] for e in fresh.effects}
        fresh.num_updates = int(count)
        self.__dict__.update(fresh.__dict__)

    def log_to(self, writer: ScalarWriter, step: int) -> None:
        """Write ``fx_prob/<effect>`` (and ``fx_difficulty/<effect>`` once scored) scalars.

        Args:
            writer: any object with ``add_scalar(tag, value, step)`` (TensorBoard's
                ``SummaryWriter``; not imported here).
            step: the global training step.
        """
        for e in self.effects:
            writer.add_scalar(f"fx_prob/{e}", self._probabilities[e], step)
            d = self._difficulty[e]
            if d is not None:
                writer.add_scalar(f"fx_difficulty/{e}", d, step)

    def __repr__(self) -> str:
        probs = ", ".join(f"{e}={p:.3f}" for e, p in self._probabilities.items())
        return f"ProbabilityScheduler({probs}; updates={self.num_updates})"
