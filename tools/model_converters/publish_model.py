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

OUT is checked before IN is read (a ``.pth`` path, not IN, not a folder, in
a folder that can be written); the file is written atomically.

IN is read weights-only (runner checkpoints load through the project's
allowlist; see ``projects/magnet/compat/checkpoint.py``).
"""
import argparse
import hashlib
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402

from projects.magnet.compat import (  # noqa: E402
    check_torch_file, load_weights)
from projects.magnet.utils.output_files import (  # noqa: E402
    check_input_file)
from projects.magnet.models.segmentors import (  # noqa: E402
    TRAINING_ONLY_MODULES)
from projects.magnet.utils import (  # noqa: E402
    CHECKPOINT_EXTENSIONS, InvalidInputError, atomic_write,
    check_output_file, run_cli)


def publish(src: str, dst: str, keep_training_modules: bool = False,
            add_hash: bool = True) -> str:
    """Write the inference checkpoint; return its path.

    Raises:
        OutputPathError: ``dst`` (or the hashed name) cannot be written.
        InvalidInputError / checkpoint errors: ``src`` is not an mmengine
            checkpoint.
    """
    check_output_file(dst, CHECKPOINT_EXTENSIONS, inputs=[src], what='OUT')
    # a folder, missing, empty or text: named before it is read
    check_input_file(src, 'IN checkpoint', allow_empty=True)
    check_torch_file(src)
    checkpoint = load_weights(src)
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict'), dict):
        raise InvalidInputError(f'{src}: expected an mmengine checkpoint '
                                'with a "state_dict" dict')
    state = checkpoint['state_dict']
    if not keep_training_modules:
        prefixes = tuple(m + '.' for m in TRAINING_ONLY_MODULES)
        state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    out = dict(state_dict=state)
    if isinstance(checkpoint.get('meta'), dict):
        out['meta'] = checkpoint['meta']
    if not add_hash:
        with atomic_write(dst) as f:
            torch.save(out, f)
        return dst
    # the name depends on the bytes: write them to a temporary file first
    with tempfile.TemporaryFile(dir=osp.dirname(osp.abspath(dst))) as tmp:
        torch.save(out, tmp)
        tmp.seek(0)
        data = tmp.read()
    digest = hashlib.sha256(data).hexdigest()[:8]
    dst = f'{osp.splitext(dst)[0]}-{digest}.pth'
    check_output_file(dst, CHECKPOINT_EXTENSIONS, inputs=[src], what='OUT')
    with atomic_write(dst) as f:
        f.write(data)
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
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
