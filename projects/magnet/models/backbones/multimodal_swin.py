"""Multimodal Swin Transformer: mmseg's Swin with language fusion per stage."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmcv.cnn import ConvModule
from mmengine.model.weight_init import (constant_init, trunc_normal_,
                                        trunc_normal_init)
from mmseg.models.backbones.swin import SwinTransformer, WindowMSA
from mmseg.registry import MODELS

from ..errors import ModelConfigError
from ..layers.alignment_module import CrossModalAlignment, PyramidContext
from ..layers.gate import ResidualGate
from ..layers.pwam import PWAM
from ..utils.fast_window_attention import use_fast_window_attention
from ..utils.inert import UNUSED, param_names
from ..utils.init_cfg import pretrained_checkpoint
from ..utils.swin_checkpoint import load_swin_pretrained

Tensor = torch.Tensor


def conv_stem(patch_conv: nn.Conv2d, channels: Sequence[int],
              norm_cfg: dict) -> nn.Sequential:
    """A convolutional stem with the stride and width of ``patch_conv``.

    ``len(channels)`` 3x3 stride-2 ConvModules (conv, norm, ReLU) and a 1x1
    projection: (B, 3, H, W) -> (B, embed_dims, H / 2^k, W / 2^k).
    """
    stride = patch_conv.stride[0]
    if stride != 2**len(channels) or patch_conv.stride[0] != \
            patch_conv.stride[1]:
        raise ModelConfigError(
            f'stem_channels={tuple(channels)} gives stride '
            f'{2 ** len(channels)}, the patch embedding has stride '
            f'{tuple(patch_conv.stride)}: use patch_size = 2 ** '
            'len(stem_channels)')
    layers, cin = [], patch_conv.in_channels
    for c in channels:
        norm = dict(norm_cfg)
        if norm.get('type') == 'GN':
            norm['num_groups'] = min(norm.get('num_groups', 8), c)
        layers.append(
            ConvModule(cin, c, 3, stride=2, padding=1, norm_cfg=norm,
                       act_cfg=dict(type='ReLU')))
        cin = c
    layers.append(nn.Conv2d(cin, patch_conv.out_channels, 1))
    return nn.Sequential(*layers)


@MODELS.register_module()
class MultimodalSwin(SwinTransformer):
    """Swin Transformer whose every stage is fused with the expression.

    Built from mmseg's :class:`SwinTransformer` (patch embedding, window
    attention blocks, patch merging are mmseg's own modules). Per stage ``s``
    MagNet adds:

    * ``pwams[s]`` — :class:`PWAM` (pixels attend to the words);
    * ``gates[s]`` — :class:`ResidualGate` adding the PWAM output to the Swin
      stream that feeds the next stage (through patch merging);
    * ``alignments[s]`` — :class:`CrossModalAlignment`; its output is the
      stage's feature map for the decode head. With ``use_alignment=False``
      (a LAVT-style model) the head receives ``norm{s}(PWAM output)``.

    The interleaving with the language encoder is driven by the segmentor
    through :meth:`embed`, :meth:`forward_blocks` and :meth:`fuse`;
    :meth:`forward` runs the backbone with fixed (not updated) words.

    Args:
        text_channels (int): Width of the word features.
        pwam_heads (Sequence[int]): Heads of the PWAMs of each stage.
        fusion_dropout (float): Dropout inside the PWAMs.
        pool_sizes (Sequence[int]): Pyramid sizes of the alignment module.
        pool_reduction (int): Pyramid branch width is C // pool_reduction.
        use_alignment (bool): Build the cross-modal alignment module.
        fast_window_attention (bool): At inference, run the window attention
            through :mod:`..utils.fast_window_attention` (no qkv/proj on the
            padding, ``scaled_dot_product_attention``); same function and
            parameters, mmseg's forward in training.
        stem_channels (Sequence[int], optional): Replace the patch
            embedding's single ``patch_size`` x ``patch_size`` convolution by
            a convolutional stem: one 3x3 stride-2 ConvModule (conv, norm,
            ReLU) per entry, then a 1x1 projection to ``embed_dims``; needs
            ``patch_size == 2 ** len(stem_channels)``. Small transformers
            trained from scratch learn faster with one ("early convolutions").
            Not in the paper model (its Swin weights have a patch conv).
            Defaults to None.
        stem_norm_cfg (dict): Norm of the stem's convolutions. Defaults to
            GN with 8 groups (batch-size independent).
        vision_only (bool): Build the Swin part only (no PWAMs, gates,
            alignment modules): the backbone of a vision pre-training with
            an mmseg decode head (``configs/pretrain``), whose checkpoint
            then initialises the Swin of a multimodal one. :meth:`forward`
            takes no words. Defaults to False.
        gate_init (str): Initialisation of the gates: ``'trunc_normal'``
            (default, std 0.02: the official effective init, small and
            trainable) or ``'zeros'`` (closed for ever in training, see
            :class:`~..layers.gate.ResidualGate`).
        **kwargs: mmseg ``SwinTransformer`` arguments (``embed_dims``,
            ``depths``, ``num_heads``, ``window_size``, ``drop_path_rate``,
            ``init_cfg`` ...). ``init_cfg=dict(type='Pretrained',
            checkpoint=...)`` accepts official Swin, mmseg and mmpretrain
            checkpoints and MagNet checkpoints (official or converted).
    """

    def __init__(self,
                 text_channels: int = 768,
                 pwam_heads: Sequence[int] = (1, 1, 1, 1),
                 fusion_dropout: float = 0.0,
                 pool_sizes: Sequence[int] = (1, 2, 3, 6),
                 pool_reduction: int = 4,
                 use_alignment: bool = True,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 fast_window_attention: bool = True,
                 stem_channels: Optional[Sequence[int]] = None,
                 stem_norm_cfg: dict = dict(type='GN', num_groups=8),
                 gate_init: str = 'trunc_normal',
                 vision_only: bool = False,
                 **kwargs) -> None:
        super().__init__(out_indices=out_indices, **kwargs)
        if self.use_abs_pos_embed:
            size = kwargs.get('pretrain_img_size', 224)
            size = (size, size) if isinstance(size, int) else tuple(size)
            patch = kwargs.get('patch_size', 4)
            self.pos_embed_shape = (size[0] // patch, size[1] // patch)
        if stem_channels:
            self.patch_embed.projection = conv_stem(
                self.patch_embed.projection, stem_channels, stem_norm_cfg)
        if fast_window_attention:
            use_fast_window_attention(self)
        num_stages = len(self.stages)
        if len(pwam_heads) != num_stages:
            raise ModelConfigError(
                f'pwam_heads needs {num_stages} entries, got '
                f'{len(pwam_heads)}')
        if tuple(out_indices) != tuple(range(num_stages)):
            raise ModelConfigError(
                'MultimodalSwin fuses and outputs every stage: '
                f'out_indices must be {tuple(range(num_stages))}')
        self.text_channels = text_channels
        self.vision_only = vision_only
        self.use_alignment = use_alignment and not vision_only
        self.pwams = self.gates = self.alignments = None
        if vision_only:
            return
        widths = self.num_features
        self.pwams = nn.ModuleList(
            PWAM(c, text_channels, h, fusion_dropout)
            for c, h in zip(widths, pwam_heads))
        self.gates = nn.ModuleList(
            ResidualGate(c, act_cfg=dict(type='GELU'), init=gate_init)
            for c in widths)
        if use_alignment:
            self.alignments = nn.ModuleList(
                CrossModalAlignment(c, text_channels, pool_sizes,
                                    pool_reduction, h, fusion_dropout)
                for c, h in zip(widths, pwam_heads))

    def inert_parameters(self) -> dict:
        """In the multimodal forward: the last stage's gate (it feeds no
        next stage) and, with the alignment module, the per-stage output
        norms (the head receives the alignment output). Both exist in the
        released weights. Nothing is inert in a ``vision_only`` backbone."""
        if self.vision_only:
            return {}
        last = len(self.gates) - 1
        out = {n: UNUSED + '; the last stage feeds no next stage'
               for n in param_names(self.gates[last], f'gates.{last}')}
        if self.use_alignment:
            for s in range(len(self.stages)):
                out.update({n: UNUSED for n in param_names(
                    getattr(self, f'norm{s}'), f'norm{s}')})
        return out

    # ------------------------------------------------------------------
    # weights
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Random init of every module, then the pretrained Swin if given.

        The official effective initialisation (docs/initialisation.md):
        truncated-normal Linear (std 0.02, bias 0) and relative position
        tables, LayerNorm (1, 0); PyTorch's default for the fusion layers
        that are 1x1 convolutions in the official code (PWAM
        :meth:`~PWAM.init_weights`, pyramid MLPs); the gates by
        ``gate_init`` (default: the same truncated normal, almost closed
        and trainable). The Swin part is
        loaded from ``init_cfg.checkpoint`` in any format supported by
        :func:`load_swin_pretrained`.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.)
            elif isinstance(m, WindowMSA):
                # mmseg's WindowMSA.init_weights, which mmengine does not
                # reach below this override (the official Swin does the
                # same in its attention constructor)
                trunc_normal_(m.relative_position_bias_table, std=.02)
        if self.use_abs_pos_embed:
            trunc_normal_(self.absolute_pos_embed, std=.02)
        # the fusion layers that are 1x1 convolutions in the official code
        # keep PyTorch's default init there (docs/initialisation.md)
        for m in self.modules():
            if isinstance(m, (PWAM, PyramidContext)):
                m.init_weights()
        for gate in self.gates or ():
            gate.init_weights()
        self._is_init = True
        checkpoint = pretrained_checkpoint(self)
        if checkpoint is None:
            return
        state_dict = load_swin_pretrained(
            checkpoint, self.state_dict(), prefix=self.init_cfg.get('prefix'))
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        loaded = len(state_dict) - len(unexpected)
        print_log(
            f'{type(self).__name__}: loaded {loaded} tensors from '
            f'{checkpoint}; {len(missing)} left at their '
            f'initialisation; {len(unexpected)} ignored', logger='current')

    # ------------------------------------------------------------------
    # stage-wise API (driven by the segmentor)
    # ------------------------------------------------------------------
    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embedding. (B, 3, H, W) -> (B, H/4 * W/4, C0), (H/4, W/4)."""
        x, hw_shape = self.patch_embed(img)
        if self.use_abs_pos_embed:
            x = x + self._position_table(hw_shape)
        return self.drop_after_pos(x), hw_shape

    def _position_table(self, hw_shape: Tuple[int, int]) -> Tensor:
        """The absolute position table, (1, H*W, C), bicubically resized
        when the input is not ``pretrain_img_size`` (mmseg's Swin adds it
        only at that size)."""
        table = self.absolute_pos_embed
        h, w = self.pos_embed_shape
        if (h, w) == tuple(hw_shape):
            return table
        grid = table.transpose(1, 2).reshape(1, -1, h, w)
        grid = torch.nn.functional.interpolate(
            grid, size=tuple(hw_shape), mode='bicubic', align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward_blocks(self, stage: int, x: Tensor,
                       hw_shape: Tuple[int, int]) -> Tensor:
        """Swin blocks of one stage (no downsampling). (B, HW, C) -> same."""
        for block in self.stages[stage].blocks:
            x = block(x, hw_shape)
        return x

    def fuse(self,
             stage: int,
             x: Tensor,
             hw_shape: Tuple[int, int],
             words: Tensor,
             word_mask: Tensor,
             need_next: bool = True
             ) -> Tuple[Tensor, Optional[Tensor], Tuple[int, int]]:
        """Vision-side fusion of one stage.

        Args:
            stage (int): Stage index.
            x (Tensor): Output of the stage's blocks, (B, HW, C).
            hw_shape (tuple): (H, W) of the stage.
            words (Tensor): Words, (B, N, L).
            word_mask (Tensor): 1 for real words, (B, N).
            need_next (bool): Compute the next stage's input (gated residual
                + patch merging). Skipped for the last stage.

        Returns:
            tuple: feature map for the head (B, C, H, W); the next stage's
            input (B, HW/4, 2C) or None; its (H, W).
        """
        residual = self.pwams[stage](x, words, word_mask)
        B, HW, C = x.shape
        if self.alignments is not None:
            feat = self.alignments[stage](x, hw_shape, residual, words,
                                          word_mask)
        else:
            feat = getattr(self, f'norm{stage}')(residual)
            feat = feat.transpose(1, 2).reshape(B, C, *hw_shape)
        x_next, next_hw = None, hw_shape
        downsample = self.stages[stage].downsample
        if need_next and downsample is not None:
            x_next, next_hw = downsample(
                self.gates[stage](x, residual), hw_shape)
        return feat, x_next, next_hw

    def forward_vision(self, img: Tensor) -> List[Tensor]:
        """The Swin alone, without the expression: (B, 3, H, W) -> one
        ``norm{s}`` map (B, C_s, H_s, W_s) per stage.

        The stream of each stage goes to the next unchanged, as through a
        closed gate. Used to pre-train the vision side on dense labels with
        an mmseg decode head (``configs/pretrain``, ``vision_only=True``);
        the PWAMs, gates and alignment modules are not used.
        """
        x, hw_shape = self.embed(img)
        outs = []
        for s in range(len(self.stages)):
            x = self.forward_blocks(s, x, hw_shape)
            B, _, C = x.shape
            feat = getattr(self, f'norm{s}')(x)
            outs.append(feat.transpose(1, 2).reshape(B, C, *hw_shape))
            downsample = self.stages[s].downsample
            if downsample is not None:
                x, hw_shape = downsample(x, hw_shape)
        return outs

    def forward(self,
                img: Tensor,
                words: Union[Tensor, List[Tensor], None] = None,
                word_mask: Optional[Tensor] = None) -> List[Tensor]:
        """Run all stages with given words (no language-side update).

        Args:
            img (Tensor): (B, 3, H, W).
            words (Tensor | list[Tensor], optional): (B, N, L), or one per
                stage. None: the vision path alone (:meth:`forward_vision`),
                so an mmseg ``EncoderDecoder`` can drive this backbone.
            word_mask (Tensor, optional): 1 for real words, (B, N); needed
                with ``words``.

        Returns:
            list[Tensor]: One (B, C_s, H_s, W_s) map per stage.
        """
        if words is None:
            return self.forward_vision(img)
        if self.vision_only:
            raise ValueError('MultimodalSwin(vision_only=True) has no fusion '
                             'modules: call it without words')
        if word_mask is None:
            raise ValueError('MultimodalSwin.forward: words given without '
                             'word_mask (B, N)')
        num_stages = len(self.stages)
        if isinstance(words, torch.Tensor):
            words = [words] * num_stages
        x, hw_shape = self.embed(img)
        outs = []
        for s in range(num_stages):
            x = self.forward_blocks(s, x, hw_shape)
            feat, x, hw_shape = self.fuse(
                s, x, hw_shape, words[s], word_mask,
                need_next=s < num_stages - 1)
            outs.append(feat)
        return outs
