"""A fixed held-out style set, embedded during training: style retrieval across songs.

:class:`StyleProbe` renders, once, ``styles`` fixed effect chains per stem type on one segment
of each of up to ``songs`` held-out tracks of that stem. During training its top-1 style
retrieval across songs within a stem type (:func:`fxencoder.metrics.retrieval_top1`; chance is
``1/styles``) is the figure that tells runs apart, and its embeddings feed TensorBoard's
projector.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxdsp
from fxdsp.registry import STEMS
from fxencoder.metrics import retrieval_top1
from fxencoder.model import FXEncoder

__all__ = ["StyleProbe"]


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

    Attributes:
        audio: ``(N, 2, L)``; ``style_ids``, ``song_ids``, ``stem_ids``: ``(N,)`` int64.
    """

    def __init__(
        self,
        dataset: Any,
        styles: int = 8,
        songs: int = 8,
        seed: int = 1234,
        config: fxdsp.ChainConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
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
            name = str(dataset.stems[int(s)])
            params = fxdsp.sample_params(
                styles, stems=name if name in STEMS else None, generator=gen, config=config
            )
            n = len(chosen)
            x = contents.repeat_interleave(styles, dim=0)
            p = fxdsp.FxParams.cat([params] * n).to(device)
            with torch.no_grad():
                audio.append(fxdsp.Manipulator(p)(x))
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
            out = [model(self.audio[i : i + batch].to(device)) for i in range(0, len(self), batch)]
        finally:
            model.train(was)
        return torch.cat(out).float().cpu()

    def retrieval(self, model: FXEncoder) -> float:
        """Top-1 style retrieval across songs within each stem type (chance ``1/styles``)."""
        return retrieval_top1(
            self.embeddings(model).numpy(), self.style_ids.numpy(), self.song_ids.numpy(),
            self.stem_ids.numpy(),
        )  # fmt: skip
