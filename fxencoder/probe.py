"""Fixed held-out style sets, embedded during training: style retrieval across songs.

:class:`StyleProbe` renders, once, ``styles`` fixed effect chains per stem type on one segment
of each of up to ``songs`` held-out tracks of that stem (the full chain, or one effect alone).
:class:`ProbeSuite` holds the full-chain probe and one single-effect probe per effect: the full
chain is easy on a homogeneous corpus (even a content embedding scores high when styles differ
by ±15 dB EQ), while a set of styles that differ in one effect only measures how finely the
encoder resolves that effect. Their top-1 retrieval across songs within a stem type
(:func:`fxencoder.metrics.retrieval_top1`; chance ``1/styles``) tells runs apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdsp.registry import EFFECTS, STEMS
from fxencoder.metrics import retrieval_top1
from fxencoder.model import FXEncoder

__all__ = ["ProbeSuite", "StyleProbe"]


class StyleProbe:
    """Held-out items ``(song, stem, style)`` rendered once.

    Args:
        dataset: a segment dataset of held-out tracks (``index`` rows ``(track, stem,
            offset)``; ``ds[i]["audio"]``).
        styles: chains per stem type.
        songs: tracks per stem type (at most).
        seed: seed of the segments and the chains.
        config: the chain config (default: the reference chain).
        device: where the audio is rendered and kept.
        effect: only this effect is on in every chain (None: the config's probabilities).
        seconds: crop the segments to this length (None: whole segments).
        level: bring each segment to its stem's average loudness first
            (:func:`fxencoder.training.level_contents`, as training does).

    Attributes:
        audio: ``(N, 2, L)`` float16 (halves the memory; embedded in float32);
            ``style_ids``, ``song_ids``, ``stem_ids``: ``(N,)`` int64.
    """

    def __init__(
        self,
        dataset: Any,
        styles: int = 8,
        songs: int = 8,
        seed: int = 1234,
        config: fxdsp.ChainConfig | None = None,
        device: str | torch.device = "cpu",
        effect: str | None = None,
        seconds: float | None = None,
        level: bool = True,
    ) -> None:
        from fxencoder.training import level_contents

        gen = torch.Generator().manual_seed(seed)
        probabilities = None
        if effect is not None:
            if effect not in EFFECTS:
                raise ValueError(f"unknown effect {effect!r}; expected one of {EFFECTS}")
            probabilities = {e: float(e == effect) for e in EFFECTS}
        self.effect = effect
        index = np.asarray(dataset.index)
        audio, style_ids, song_ids, stem_ids = [], [], [], []
        for s in np.unique(index[:, 1]):
            rows = np.nonzero(index[:, 1] == s)[0]
            tracks = np.unique(index[rows, 0])
            if len(tracks) < 2:
                continue
            order = torch.randperm(len(tracks), generator=gen)[:songs].tolist()
            chosen = []
            for t in sorted(tracks[order]):
                r = rows[index[rows, 0] == t]
                chosen.append(int(r[int(torch.randint(len(r), (1,), generator=gen))]))
            contents = torch.stack([dataset[r]["audio"] for r in chosen]).to(device)
            if seconds is not None:
                contents = contents[..., : max(2, round(seconds * dataset.sample_rate))]
            name = str(dataset.stems[int(s)])
            if level:
                contents = level_contents(contents, name, dataset.sample_rate)
            params = fxdsp.sample_params(
                styles, stems=name if name in STEMS else None, generator=gen, config=config,
                probabilities=probabilities,
            )  # fmt: skip
            n = len(chosen)
            x = contents.repeat_interleave(styles, dim=0)
            p = fxdsp.FxParams.cat([params] * n).to(device)
            with torch.no_grad():
                audio.append(fxdsp.Manipulator(p)(x).half())
            style_ids.append(torch.arange(styles).repeat(n))
            song_ids.append(torch.tensor(index[chosen, 0]).repeat_interleave(styles))
            stem_ids.append(torch.full((n * styles,), int(s)))
        if not audio:
            raise ValueError("no stem type has two held-out tracks: the probe needs more data")
        self.audio = torch.cat(audio)
        self.style_ids = torch.cat(style_ids)
        self.song_ids = torch.cat(song_ids)
        self.stem_ids = torch.cat(stem_ids)
        self.stems = [str(dataset.stems[int(s)]) for s in self.stem_ids]

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    @torch.no_grad()
    def embeddings(self, model: FXEncoder, batch: int = 32) -> Tensor:
        """The model's embeddings of the probe, ``(N, embed_dim)``, in eval mode."""
        was = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            out = [
                model(self.audio[i : i + batch].to(device=device, dtype=torch.float32))
                for i in range(0, len(self), batch)
            ]
        finally:
            model.train(was)
        return torch.cat(out).float().cpu()

    def retrieval(self, model: FXEncoder) -> float:
        """Top-1 style retrieval across songs within each stem type (chance ``1/styles``)."""
        return retrieval_top1(
            self.embeddings(model).numpy(), self.style_ids.numpy(), self.song_ids.numpy(),
            self.stem_ids.numpy(),
        )  # fmt: skip


class ProbeSuite:
    """The full-chain probe and one single-effect probe per effect.

    Args:
        dataset: held-out segments.
        styles: full-chain styles per stem type.
        single_styles: styles per stem type of each single-effect probe.
        songs: tracks per stem type.
        seconds: segment length of the probes.
        seed: seed of the probes (each probe its own offset of it).
        config: the chain config.
        device: where the audio is kept.
    """

    def __init__(
        self,
        dataset: Any,
        styles: int = 16,
        single_styles: int = 6,
        songs: int = 6,
        seconds: float = 2.0,
        seed: int = 1234,
        config: fxdsp.ChainConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.probes: dict[str, StyleProbe] = {
            "full": StyleProbe(dataset, styles, songs, seed, config, device, None, seconds)
        }
        for k, effect in enumerate(EFFECTS):
            self.probes[effect] = StyleProbe(
                dataset, single_styles, songs, seed + 1 + k, config, device, effect, seconds
            )

    def retrieval(self, model: FXEncoder) -> dict[str, float]:
        """Top-1 retrieval of every probe, and ``"single_mean"`` over the single-effect ones."""
        out = {name: probe.retrieval(model) for name, probe in self.probes.items()}
        out["single_mean"] = float(np.mean([out[e] for e in EFFECTS]))
        return out

    def embed_with(self, fn: Any) -> dict[str, float]:
        """The same figures for any ``fn(audio (N, 2, L) float32) -> (N, E)`` (a baseline)."""
        out = {}
        for name, probe in self.probes.items():
            emb = torch.cat([fn(probe.audio[i : i + 64].float()) for i in range(0, len(probe), 64)])
            out[name] = retrieval_top1(
                emb.numpy(), probe.style_ids.numpy(), probe.song_ids.numpy(),
                probe.stem_ids.numpy(),
            )  # fmt: skip
        out["single_mean"] = float(np.mean([out[e] for e in EFFECTS]))
        return out
