"""Cross-modal alignment loss (CAL): pixel-to-pixel and pixel-to-text
contrastive terms (training only).

The paper names the loss but its terms are not published; this is the
reading of docs/training.md, "What is inferred" (all weights and the
temperature are arguments). With L2-normalised pixel embeddings ``e_p``
(B, D, h, w), the projected sentence embedding ``t`` (B, D), the ground
truth resized to (h, w) with foreground F, background G (ignored pixels in
neither) and temperature tau:

* pixel-to-text (sigmoid contrast, balanced):
  ``L_p2t = 1/2 mean_{p in F} softplus(-s_p) + 1/2 mean_{p in G}
  softplus(s_p)``, ``s_p = e_p . t / tau``: referent pixels agree with the
  sentence, the others do not. (One term alone when F or G is empty.)
* pixel-to-pixel (InfoNCE with a foreground prototype
  ``f = normalize(mean_{p in F} e_p)``): for every anchor ``i in F``
  ``-log( exp(e_i . f / tau) / (exp(e_i . f / tau) + sum_{j in G}
  exp(e_i . e_j / tau)) )``, averaged over anchors; images without F or G
  contribute nothing.

Both are averaged over the images that have a term. A sample whose
expression refers to nothing (generalised RIS, ``has_referent`` False) is
left out of both terms: the loss aligns pixels with the description of a
referent and there is none; its one-sided "no pixel is the sentence" term
would be a second, unbalanced no-target classifier beside the decode head's
(an image whose referent was merely cropped away keeps its background term
as before). At most
``max_anchors`` foreground anchors and ``max_negatives`` background
negatives are drawn at random per image (the pairwise term is
``O(|F| |G|)``).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from ..errors import ModelConfigError
from ..utils.precision import float32_region

Tensor = torch.Tensor


def _subsample(index: Tensor, limit: Optional[int]) -> Tensor:
    if limit is None or index.numel() <= limit:
        return index
    keep = torch.randperm(index.numel(), device=index.device)[:limit]
    return index[keep]


@MODELS.register_module()
class CrossModalAlignmentLoss(nn.Module):
    """See the module docstring.

    Args:
        temperature (float): tau. Defaults to 0.07.
        learnable_temperature (bool): Learn ``log(1 / tau)`` (CLIP-style,
            clamped to tau >= 0.01). Defaults to False.
        p2p_weight (float): Weight of the pixel-to-pixel term. Defaults to
            1.0; 0 switches it off.
        p2t_weight (float): Weight of the pixel-to-text term. Defaults to
            1.0; 0 switches it off.
        max_anchors (int, optional): Foreground anchors per image for the
            pixel-to-pixel term. Defaults to 512.
        max_negatives (int, optional): Background pixels per image for the
            pixel-to-pixel term. Defaults to 2048.
        ignore_index (int): Ground-truth value to ignore. Defaults to 255.
        loss_name (str): Prefix of the returned keys. Defaults to
            ``'loss_cal'``.
    """

    def __init__(self,
                 temperature: float = 0.07,
                 learnable_temperature: bool = False,
                 p2p_weight: float = 1.0,
                 p2t_weight: float = 1.0,
                 max_anchors: Optional[int] = 512,
                 max_negatives: Optional[int] = 2048,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_cal') -> None:
        super().__init__()
        if temperature <= 0:
            raise ModelConfigError(
                f'temperature must be > 0, got {temperature}')
        log_scale = torch.tensor(1.0 / temperature).log()
        if learnable_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer('log_scale', log_scale, persistent=False)
        self.p2p_weight = p2p_weight
        self.p2t_weight = p2t_weight
        self.max_anchors = max_anchors
        self.max_negatives = max_negatives
        self.ignore_index = ignore_index
        self.loss_name = loss_name

    @property
    def scale(self) -> Tensor:
        """1 / tau (tau clamped to >= 0.01)."""
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    @float32_region  # contrastive logits and losses stay fp32 under AMP
    def forward(self, pixel_embeds: Tensor, text_embeds: Tensor,
                gt: Tensor,
                has_referent: Optional[Tensor] = None
                ) -> Dict[str, Tensor]:
        """Args:
            pixel_embeds (Tensor): (B, D, h, w) pixel embeddings.
            text_embeds (Tensor): (B, D) sentence embeddings.
            gt (Tensor): (B, 1, H, W) or (B, H, W) labels (0 background,
                >0 referent, ``ignore_index`` ignored), resized here to
                (h, w) with nearest interpolation.
            has_referent (Tensor, optional): (B, ) bool, False for a
                no-target sample (left out of both terms). None: every
                sample has one.

        Returns:
            dict: ``<loss_name>_p2p`` and ``<loss_name>_p2t`` (weighted), the
            enabled ones only; 0 with a graph when no sample has a term.
        """
        B, D, h, w = pixel_embeds.shape
        if gt.dim() == 3:
            gt = gt[:, None]
        gt = F.interpolate(gt.float(), size=(h, w), mode='nearest')
        gt = gt.flatten(1)  # (B, hw)
        valid = gt != self.ignore_index
        fg = (gt > 0) & valid
        bg = (gt == 0) & valid
        if has_referent is not None:
            if tuple(has_referent.shape) != (B, ):
                raise ValueError(f'has_referent must have shape ({B}, ), '
                                 f'got {tuple(has_referent.shape)}')
            keep = has_referent.to(device=gt.device, dtype=torch.bool)
            fg = fg & keep[:, None]
            bg = bg & keep[:, None]
        pix = F.normalize(pixel_embeds.float().flatten(2), dim=1)  # B,D,hw
        txt = F.normalize(text_embeds.float(), dim=-1)
        scale = self.scale
        zero = pixel_embeds.sum() * 0.0 + text_embeds.sum() * 0.0
        losses = {}
        if self.p2t_weight:
            terms = []
            sim = torch.einsum('bdn,bd->bn', pix, txt) * scale
            for b in range(B):
                parts = []
                if fg[b].any():
                    parts.append(F.softplus(-sim[b][fg[b]]).mean())
                if bg[b].any():
                    parts.append(F.softplus(sim[b][bg[b]]).mean())
                if parts:
                    terms.append(sum(parts) / len(parts))
            losses[f'{self.loss_name}_p2t'] = self.p2t_weight * (
                torch.stack(terms).mean() if terms else zero)
        if self.p2p_weight:
            terms = []
            for b in range(B):
                fg_idx = fg[b].nonzero()[:, 0]
                bg_idx = bg[b].nonzero()[:, 0]
                if fg_idx.numel() == 0 or bg_idx.numel() == 0:
                    continue
                proto = F.normalize(pix[b][:, fg_idx].mean(1), dim=0)
                anchors = pix[b][:, _subsample(fg_idx, self.max_anchors)]
                negatives = pix[b][:, _subsample(bg_idx, self.max_negatives)]
                pos = (anchors.t() @ proto)[:, None] * scale  # (A, 1)
                neg = (anchors.t() @ negatives) * scale  # (A, G)
                logits = torch.cat([pos, neg], dim=1)
                terms.append(
                    (torch.logsumexp(logits, dim=1) - pos[:, 0]).mean())
            losses[f'{self.loss_name}_p2p'] = self.p2p_weight * (
                torch.stack(terms).mean() if terms else zero)
        return losses
