"""Which samples the current training batch holds, for error messages.

Before every training iteration :class:`BatchIdentityHook` puts one small
dict per sample (image file, image id, ref id, sentence id, text; whichever
the pipeline packed into the data samples' metainfo) into the message hub
under ``train_batch_samples``. The optimizer wrappers' non-finite guard
(:mod:`.nonfinite_guard`) names these samples when a loss or gradient is
NaN / Inf.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Sequence

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .nonfinite_guard import BATCH_INFO_KEY

__all__ = ['BatchIdentityHook', 'batch_identities']

#: Metainfo keys reported, in this order (missing ones are left out).
IDENTITY_KEYS = ('img_path', 'image_id', 'ref_id', 'sent_id', 'text')


def batch_identities(data_batch: Any,
                     keys: Sequence[str] = IDENTITY_KEYS
                     ) -> List[Dict[str, Any]]:
    """One dict per sample of an mmseg data batch (``dict(inputs=...,
    data_samples=[SegDataSample, ...])``); ``img_path`` is shortened to the
    file name."""
    samples = data_batch.get('data_samples', []) if isinstance(
        data_batch, dict) else []
    out = []
    for sample in samples:
        meta = getattr(sample, 'metainfo', {})
        ident = {k: meta[k] for k in keys if k in meta}
        if 'img_path' in ident:
            ident['img_path'] = osp.basename(str(ident['img_path']))
        out.append(ident)
    return out


@HOOKS.register_module()
class BatchIdentityHook(Hook):
    """Record the current batch's sample identities (see module doc)."""

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        runner.message_hub.update_info(BATCH_INFO_KEY,
                                       batch_identities(data_batch))
