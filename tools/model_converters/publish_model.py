"""Export a training checkpoint as inference weights.

Usage:
    python tools/model_converters/publish_model.py IN OUT
        [--keep-training-modules] [--no-hash]

Keeps only ``state_dict`` (and ``meta``): drops the optimizer, scheduler and
message hub, and the training-only modules (Mask Grounding head, learnable
alignment-loss temperature; see ``TRAINING_ONLY_MODULES``), which never run
at inference. ``--keep-training-modules`` keeps them (e.g. to fine-tune
with the objectives later). The result loads strictly into the same config
(missing training-only modules keep their initialisation) and is named
``OUT`` with the first 8 hex digits of its sha256 appended, as OpenMMLab's
``publish_model`` does (``--no-hash`` to skip).

IN is read weights-only (runner checkpoints load through the project's
allowlist; see ``projects/magnet/compat/checkpoint.py``).
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402

from projects.magnet.compat import load_weights  # noqa: E402
from projects.magnet.models.segmentors import (  # noqa: E402
    TRAINING_ONLY_MODULES)


def publish(src: str, dst: str, keep_training_modules: bool = False,
            add_hash: bool = True) -> str:
    """Write the inference checkpoint; return its path."""
    checkpoint = load_weights(src)
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict'), dict):
        raise ValueError(f'{src}: expected an mmengine checkpoint with a '
                         '"state_dict" dict')
    state = checkpoint['state_dict']
    if not keep_training_modules:
        prefixes = tuple(m + '.' for m in TRAINING_ONLY_MODULES)
        state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    out = dict(state_dict=state)
    if isinstance(checkpoint.get('meta'), dict):
        out['meta'] = checkpoint['meta']
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    torch.save(out, tmp)
    if add_hash:
        with open(tmp, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:8]
        stem = dst[:-len('.pth')] if dst.endswith('.pth') else dst
        dst = f'{stem}-{digest}.pth'
    os.replace(tmp, dst)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--keep-training-modules', action='store_true')
    parser.add_argument('--no-hash', action='store_true')
    args = parser.parse_args()
    path = publish(args.src, args.dst, args.keep_training_modules,
                   not args.no_hash)
    print(path)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
