"""BERT language encoder of MagNet, updated by vision after every stage."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch.utils.checkpoint import checkpoint

from ...utils.errors import InputFileError, UserError
from ...utils.pretrained import resolve_pretrained
from ..errors import ModelConfigError, PretrainedWeightsError
from ..layers.language_fusion import LanguageFusion
from ..utils.inert import attention_key_biases
from ..utils.init_cfg import pretrained_checkpoint

Tensor = torch.Tensor

#: bert-base-uncased, so that building the model never needs the network.
BERT_BASE_UNCASED = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12,
    num_attention_heads=12, intermediate_size=3072, hidden_act='gelu',
    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
    layer_norm_eps=1e-12, pad_token_id=0)

#: The additive attention-mask value of the released models (BERT's old
#: convention). Newer transformers use ``finfo.min``, which overflows in the
#: language-side fusion (it multiplies features by this mask).
ADDITIVE_MASK_VALUE = -10000.0


def additive_attention_mask(attention_mask: Tensor,
                            dtype: torch.dtype) -> Tensor:
    """(B, N) 0/1 mask -> (B, 1, 1, N) additive mask (0 / -10000)."""
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * ADDITIVE_MASK_VALUE


@MODELS.register_module()
class BertLanguageEncoder(BaseModule):
    """A ``transformers.BertModel`` run in stages, fused with vision.

    The BERT layers are split into groups at ``stage_ends`` (bert-base:
    layers 0-2, 3-5, 6-8, 9-11). After group ``s`` the segmentor calls
    :meth:`fuse` with the raw output of vision stage ``s``; the words are
    updated by :class:`LanguageFusion` (word-pixel attention + tanh gate).

    Any BERT-family checkpoint works: the architecture comes from
    ``bert_cfg`` (so building never touches the network) and the weights
    from ``init_cfg=dict(type='Pretrained', checkpoint=<hub name | local dir
    | pkg://package/subdir>)`` in :meth:`init_weights`.

    Args:
        bert_cfg (dict): ``transformers.BertConfig`` fields.
        stage_ends (Sequence[int]): Index after the last layer of each group.
        vision_channels (Sequence[int]): Width of each vision stage.
        fusion_heads (Sequence[int]): Heads of each language fusion.
        fusion_dropout (float): Dropout inside the fusions.
        mask_mode (str): ``'official'`` (reproduces the released weights) or
            ``'fixed'`` (see :mod:`..layers.language_fusion`).
        attn_implementation (str): transformers attention backend for the
            BERT layers (``'eager'`` or ``'sdpa'``).
        frozen_layers (Sequence[int]): BERT layers whose parameters are not
            trained (``requires_grad=False``), e.g. ``(10, 11)`` as in the
            LAVT recipe. Defaults to none.
        freeze_embeddings (bool): Do not train the embeddings (the LAVT
            recipe). With Mask Grounding's tied classifier this also fixes
            its vocabulary matrix. Defaults to False.
        gate_init (str): Initialisation of the fusion gates:
            ``'trunc_normal'`` (default; std 0.02, small and trainable, so
            that vision updates the words from the first step) or
            ``'zeros'`` (the official constructor's zeros; such a gate gets
            no gradient and stays closed for ever, see
            :class:`~..layers.gate.ResidualGate`). docs/initialisation.md.
        with_cp (bool): Gradient checkpointing of the BERT layers in
            training: each layer's activations are recomputed in the
            backward pass instead of kept (less memory, ~1/3 more compute;
            the same gradients, dropout included). The Swin stages have the
            same switch (``backbone.with_cp``). Defaults to False.
    """

    def __init__(self,
                 bert_cfg: dict = BERT_BASE_UNCASED,
                 stage_ends: Sequence[int] = (3, 6, 9, 12),
                 vision_channels: Sequence[int] = (128, 256, 512, 1024),
                 fusion_heads: Sequence[int] = (1, 1, 1, 1),
                 fusion_dropout: float = 0.0,
                 mask_mode: str = 'official',
                 attn_implementation: str = 'sdpa',
                 frozen_layers: Sequence[int] = (),
                 freeze_embeddings: bool = False,
                 gate_init: str = 'trunc_normal',
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import BertConfig, BertModel
        config = BertConfig(**{**BERT_BASE_UNCASED, **bert_cfg})
        config._attn_implementation = attn_implementation
        num_layers = config.num_hidden_layers
        stage_ends = tuple(stage_ends)
        if (list(stage_ends) != sorted(stage_ends) or stage_ends[-1] !=
                num_layers or stage_ends[0] < 1):
            raise ModelConfigError(
                f'stage_ends {stage_ends} must increase and end at '
                f'num_hidden_layers={num_layers}')
        if not len(stage_ends) == len(vision_channels) == len(fusion_heads):
            raise ModelConfigError(
                'stage_ends, vision_channels and fusion_heads '
                'need one entry per stage')
        self.bert = BertModel(config, add_pooling_layer=False)
        self.stage_ends = stage_ends
        self.with_cp = with_cp
        self.channels = config.hidden_size
        self.fusions = nn.ModuleList(
            LanguageFusion(self.channels, c, h, fusion_dropout, mask_mode,
                           gate_init)
            for c, h in zip(vision_channels, fusion_heads))
        bad = [i for i in frozen_layers if not 0 <= i < num_layers]
        if bad:
            raise ModelConfigError(f'frozen_layers {bad} outside the '
                                   f'{num_layers} BERT layers')
        self.frozen_layers = tuple(frozen_layers)
        self.freeze_embeddings = freeze_embeddings
        frozen = [self.bert.encoder.layer[i] for i in self.frozen_layers]
        if freeze_embeddings:
            frozen.append(self.bert.embeddings)
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)

    def inert_parameters(self) -> dict:
        """The BERT layers' key biases (a softmax over the keys follows)."""
        return attention_key_biases(self.bert.encoder.layer,
                                    'bert.encoder.layer')

    @property
    def num_stages(self) -> int:
        return len(self.stage_ends)

    def init_weights(self) -> None:
        """Fusion gates (``gate_init``); BERT weights from
        ``init_cfg.checkpoint``."""
        for fusion in self.fusions:
            fusion.gate.init_weights()
        self._is_init = True
        checkpoint = pretrained_checkpoint(self)
        if checkpoint is None:
            return
        from transformers import BertModel
        source = resolve_pretrained(checkpoint)
        try:
            pretrained = BertModel.from_pretrained(source,
                                                   add_pooling_layer=False)
        except UserError:
            raise
        except (OSError, ValueError) as err:
            # transformers' words for a folder / hub name it cannot read
            raise InputFileError(
                f'text_encoder.init_cfg.checkpoint={checkpoint!r}: cannot '
                f'load BERT weights from {source} ({err})') from err
        incompatible = self.bert.load_state_dict(pretrained.state_dict(),
                                                 strict=False)
        if incompatible.missing_keys:
            raise PretrainedWeightsError(
                f'{source}: BERT weights missing for '
                f'{incompatible.missing_keys[:8]} (bert_cfg does not match '
                'the checkpoint?)')
        print_log(f'{type(self).__name__}: loaded BERT weights from '
                  f'{source}', logger='current')

    def embed(self, input_ids: Tensor,
              attention_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Word embeddings and the additive mask.

        Args:
            input_ids (Tensor): (B, N) token ids.
            attention_mask (Tensor): (B, N), 1 for real tokens.

        Returns:
            tuple: words (B, N, L) and the additive mask (B, 1, 1, N).
        """
        token_type_ids = torch.zeros_like(input_ids)
        words = self.bert.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids)
        return words, additive_attention_mask(attention_mask, words.dtype)

    def forward_stage(self, stage: int, words: Tensor,
                      additive_mask: Tensor) -> Tensor:
        """Run BERT layer group ``stage``. (B, N, L) -> (B, N, L)."""
        start = self.stage_ends[stage - 1] if stage > 0 else 0
        # non-reentrant checkpointing: also with inputs that need no grad
        # (frozen embeddings)
        use_cp = self.with_cp and self.training and torch.is_grad_enabled()
        for layer in self.bert.encoder.layer[start:self.stage_ends[stage]]:
            if use_cp:
                out = checkpoint(layer, words, additive_mask,
                                 use_reentrant=False)
            else:
                out = layer(words, additive_mask)
            words = out[0] if isinstance(out, tuple) else out
        return words

    def fuse(self, stage: int, pixels: Tensor, words: Tensor,
             additive_mask: Tensor) -> Tensor:
        """Update the words with vision stage ``stage``.

        Args:
            stage (int): Stage index.
            pixels (Tensor): Raw output of the vision stage, (B, HW, C).
            words (Tensor): (B, N, L).
            additive_mask (Tensor): (B, 1, 1, N).

        Returns:
            Tensor: Updated words, (B, N, L).
        """
        return self.fusions[stage](pixels, words, additive_mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Text-only encoding (no vision fusion). Returns (B, N, L)."""
        words, additive_mask = self.embed(input_ids, attention_mask)
        for stage in range(self.num_stages):
            words = self.forward_stage(stage, words, additive_mask)
        return words
