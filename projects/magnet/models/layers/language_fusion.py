"""Language-side fusion: the words attend to the pixels of a vision stage.

MagNet updates the BERT token features with vision after every group of BERT
layers (bidirectional fusion). The released models compute this attention with
a quirk that a faithful port must keep (``mask_mode='official'``):

* the word queries are multiplied by BERT's *additive* mask (0 for real
  words, -10000 for padding) instead of a 0/1 mask, so real words attend
  uniformly over all pixels and padded words attend to (almost) one pixel;
* the attention output is instance-normalised over the N token positions,
  padding included, so vision reaches real words only through those
  statistics.

``mask_mode='fixed'`` multiplies the queries by the 0/1 mask instead (for new
training only; it does not reproduce the released weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..errors import ModelConfigError
from .gate import ResidualGate
from .pwam import WORD_MASK_VALUE
from ..utils.inert import UNUSED
from ..utils.precision import float32_region

MASK_MODES = ('official', 'fixed')


class WordPixelAttention(BaseModule):
    """Words (queries) attend over pixels (keys/values).

    Args:
        text_channels (int): Word width L (query/key/value/output width).
        vision_channels (int): Pixel width C of the vision stage.
        num_heads (int): Attention heads (scale is always ``L ** -0.5``).
        mask_mode (str): ``'official'`` or ``'fixed'`` (see module doc).
    """

    def __init__(self, text_channels: int, vision_channels: int,
                 num_heads: int = 1, mask_mode: str = 'official',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mask_mode not in MASK_MODES:
            raise ModelConfigError(f'mask_mode must be one of {MASK_MODES}, '
                                   f'got {mask_mode!r}')
        if text_channels % num_heads:
            raise ModelConfigError(f'text_channels ({text_channels}) must be '
                                   f'divisible by num_heads ({num_heads})')
        self.channels = text_channels
        self.num_heads = num_heads
        self.mask_mode = mask_mode
        self.query_proj = nn.Linear(text_channels, text_channels)
        self.key_proj = nn.Linear(vision_channels, text_channels)
        self.value_proj = nn.Linear(vision_channels, text_channels)
        self.out_proj = nn.Linear(text_channels, text_channels)

    def inert_parameters(self) -> dict:
        """Biases that an InstanceNorm subtracts again: the key and value
        biases (InstanceNorm over the pixels; :meth:`forward` never reads
        them) and the output bias (InstanceNorm over the tokens)."""
        over_pixels = 'bias removed by the InstanceNorm over the pixels'
        out = {'key_proj.bias': over_pixels,
               'value_proj.bias': over_pixels,
               'out_proj.bias': 'bias removed by the InstanceNorm over the '
               'tokens'}
        if self.mask_mode == 'official':
            # real words' queries are multiplied by 0 (uniform attention),
            # padded words' by -10000 (a saturated softmax): no gradient
            # reaches the query and key projections
            reason = ("mask_mode='official': queries scaled by the additive "
                      "mask (0 / -10000), the attention logits carry no "
                      "gradient ('fixed' trains them)")
            out.update({'query_proj.weight': reason,
                        'query_proj.bias': reason,
                        'key_proj.weight': reason})
        return out

    @staticmethod
    def _instance_norm(x: torch.Tensor) -> torch.Tensor:
        """InstanceNorm1d (no affine, eps 1e-5) of (B, C, T) over T."""
        return F.instance_norm(x, eps=1e-5)

    def _query(self, words: torch.Tensor,
               additive_mask: torch.Tensor) -> tuple:
        """Masked, head-split queries (B, heads, N, hd) and the (B, N) mask.
        """
        B, N, L = words.shape
        heads, head_dim = self.num_heads, L // self.num_heads
        ext = additive_mask.reshape(B, N).to(words.dtype)
        if self.mask_mode == 'official':
            query_scale = ext
        else:
            query_scale = (ext == 0).to(words.dtype)
        query = self.query_proj(words) * query_scale[:, :, None]  # (B, N, L)
        return query.view(B, N, heads, head_dim).transpose(1, 2), ext

    def _attend(self, sim: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
        L = self.channels
        sim = (L**-0.5) * sim  # (B, heads, N, HW)
        sim = sim + (WORD_MASK_VALUE * ext[:, None, :, None] -
                     WORD_MASK_VALUE)
        return F.softmax(sim, dim=-1)

    def _output(self, out: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, hd) -> out_proj + InstanceNorm over N, (B, N, L)."""
        B, _, N, _ = out.shape
        out = out.transpose(1, 2).reshape(B, N, self.channels)
        # InstanceNorm over the token axis (padding positions included).
        out = self._instance_norm(self.out_proj(out).transpose(1, 2))
        return out.transpose(1, 2)

    @float32_region  # the +-10000 mask arithmetic stays fp32 under AMP
    def forward(self, pixels: torch.Tensor, words: torch.Tensor,
                additive_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pixels (Tensor): Vision stage output, (B, HW, C).
            words (Tensor): Words, (B, N, L).
            additive_mask (Tensor): BERT extended mask, 0 for real words and
                -10000 for padding, (B, 1, 1, N).

        Returns:
            Tensor: One vision feature per word, (B, N, L).

        Computed in factored form (the same function as
        :meth:`forward_direct`): the key/value projections are followed by
        an InstanceNorm over the pixels, so with centred pixels
        ``P_c = P - mean(P)``, per-channel std ``s = sqrt(diag(W Cov(P)
        W^T) + eps)`` and the biases cancelling,
        ``q . key = ((q / s_k) W_k) . P_c`` and
        ``attn @ value = ((attn @ P_c) W_v^T) / s_v``. Nothing of size
        ``HW x L`` is built: O(HW C (C + N)) instead of O(HW C L) work.
        """
        B, HW, C = pixels.shape
        heads = self.num_heads
        head_dim = self.channels // heads
        query, ext = self._query(words, additive_mask)
        pixels = pixels.to(query.dtype)
        centred = pixels - pixels.mean(1, keepdim=True)  # (B, HW, C)
        cov = torch.matmul(centred.transpose(1, 2), centred) / HW  # (B,C,C)
        w_k = self.key_proj.weight  # (L, C)
        w_v = self.value_proj.weight
        # biased variance of every projected channel over the pixels
        std_k = ((w_k @ cov) * w_k).sum(-1).add(1e-5).sqrt()  # (B, L)
        std_v = ((w_v @ cov) * w_v).sum(-1).add(1e-5).sqrt()
        q = query / std_k.view(B, 1, heads, head_dim).transpose(1, 2)
        # (B, heads, N, hd) @ (heads, hd, C) -> (B, heads, N, C)
        q = torch.matmul(q, w_k.view(heads, head_dim, C))
        attn = self._attend(
            torch.matmul(q, centred[:, None].transpose(2, 3)), ext)
        mixed = torch.matmul(attn, centred[:, None])  # (B, heads, N, C)
        out = torch.matmul(mixed, w_v.view(heads, head_dim, C).transpose(
            1, 2))  # (B, heads, N, hd)
        out = out / std_v.view(B, 1, heads, head_dim).transpose(1, 2)
        return self._output(out)

    @float32_region
    def forward_direct(self, pixels: torch.Tensor, words: torch.Tensor,
                       additive_mask: torch.Tensor) -> torch.Tensor:
        """Literal form of :meth:`forward` (normalised ``HW x L`` keys and
        values); kept as the reference of the factored computation."""
        B, N, L = words.shape
        HW = pixels.shape[1]
        heads, head_dim = self.num_heads, L // self.num_heads
        query, ext = self._query(words, additive_mask)
        # InstanceNorm over the pixel axis: (B, L, HW)
        key = self._instance_norm(self.key_proj(pixels).transpose(1, 2))
        value = self._instance_norm(self.value_proj(pixels).transpose(1, 2))
        key = key.view(B, heads, head_dim, HW)
        value = value.view(B, heads, head_dim, HW)
        attn = self._attend(torch.matmul(query, key), ext)
        out = torch.matmul(attn, value.transpose(2, 3))  # (B, h, N, hd)
        return self._output(out)


class LanguageFusion(BaseModule):
    """Word-pixel attention module + gate: one language-side fusion step.

    ``r = GELU(mm_proj(GELU(word_proj(l)) * attn(v, l)))``;
    ``l' = l + tanh(fc2(ReLU(fc1(r)))) * r``.

    ``norm`` (LayerNorm of ``r``) exists in the released weights; its output
    is not used by the inference path and it is only applied by
    :meth:`residual_norm`.

    Args:
        text_channels (int): Word width L.
        vision_channels (int): Pixel width C of the vision stage.
        num_heads (int): Attention heads.
        dropout (float): Dropout after both projections.
        mask_mode (str): ``'official'`` or ``'fixed'``.
        gate_init (str): Initialisation of the gate, ``'trunc_normal'``
            (small, trainable) or ``'zeros'`` (closed for ever in training),
            see :class:`ResidualGate`.
    """

    def __init__(self, text_channels: int, vision_channels: int,
                 num_heads: int = 1, dropout: float = 0.0,
                 mask_mode: str = 'official',
                 gate_init: str = 'trunc_normal', init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.word_proj = nn.Linear(text_channels, text_channels)
        self.attn = WordPixelAttention(text_channels, vision_channels,
                                       num_heads, mask_mode)
        self.mm_proj = nn.Linear(text_channels, text_channels)
        self.dropout = nn.Dropout(dropout)
        self.gate = ResidualGate(text_channels, act_cfg=dict(type='ReLU'),
                                 init=gate_init)
        self.norm = nn.LayerNorm(text_channels)

    def inert_parameters(self) -> dict:
        """``norm``: in the released weights, not in the forward pass."""
        return {f'norm.{n}': UNUSED for n, _ in self.norm.named_parameters()}

    def residual(self, pixels: torch.Tensor, words: torch.Tensor,
                 additive_mask: torch.Tensor) -> torch.Tensor:
        """The fusion output r, (B, N, L)."""
        word = self.dropout(F.gelu(self.word_proj(words)))
        vis = self.attn(pixels, words, additive_mask)
        return self.dropout(F.gelu(self.mm_proj(word * vis)))

    def residual_norm(self, residual: torch.Tensor) -> torch.Tensor:
        """LayerNorm of the fusion output (unused by inference)."""
        return self.norm(residual)

    def forward(self, pixels: torch.Tensor, words: torch.Tensor,
                additive_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pixels (Tensor): Vision stage output, (B, HW, C).
            words (Tensor): Words, (B, N, L).
            additive_mask (Tensor): 0 / -10000 mask, (B, 1, 1, N).

        Returns:
            Tensor: Updated words, (B, N, L).
        """
        return self.gate(words, self.residual(pixels, words, additive_mask))
