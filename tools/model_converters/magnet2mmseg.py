"""Convert an official MagNet checkpoint to this project's format.

Usage:
    python tools/model_converters/magnet2mmseg.py SRC DST

SRC is an official release (``magnet_refcoco.pth`` ...; ``{'model': sd}`` or
a bare state dict). It is read with ``weights_only=True``: nothing in it is
executed. Every key must map onto the MagNet model that the checkpoint's
shapes describe, shape for shape, otherwise nothing is written. DST is an
mmengine checkpoint (``{'meta': ..., 'state_dict': ...}``) that
``tools/test.py`` and ``mmengine.runner.load_checkpoint`` load strictly.
DST is checked before anything is read (a ``.pth`` path, not SRC itself, not
a folder, in a folder that can be written) and written atomically: a failure
leaves no partial file and an existing DST untouched.
"""
import argparse
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from projects.magnet.compat import (  # noqa: E402
    check_torch_file, load_weights)
from projects.magnet.utils.output_files import (  # noqa: E402
    check_input_file)
from projects.magnet.utils import (  # noqa: E402
    CHECKPOINT_EXTENSIONS, check_output_file, run_cli, save_checkpoint)
from projects.magnet.converters import (ConversionError,  # noqa: E402
                                        convert_official_checkpoint,
                                        unwrap_official)
from projects.magnet.converters.validate import (  # noqa: E402
    UNUSED_AT_INFERENCE, check_converted, expected_shapes)


def convert(src: str, dst: str, verbose: bool = True) -> dict:
    """Convert ``src`` into ``dst``; return the converted state dict.

    Raises:
        OutputPathError: ``dst`` cannot be written (checked first).
        ConversionError / checkpoint errors: ``src`` is not an official
            MagNet checkpoint.
    """
    check_output_file(dst, CHECKPOINT_EXTENSIONS, inputs=[src], what='DST')
    # a folder, missing, empty or text: named before it is read
    check_input_file(src, 'SRC checkpoint', allow_empty=True)
    check_torch_file(src)
    checkpoint = load_weights(src)
    try:
        official = unwrap_official(checkpoint)
        converted = convert_official_checkpoint(official, strict=True)
        check_converted(converted, expected_shapes(official))
    except (ConversionError, KeyError) as err:
        raise ConversionError(f'{src}: {err}') from err
    meta = dict(source=osp.basename(src), converter='magnet2mmseg',
                num_official_keys=len(official))
    # never leave a half-written DST
    save_checkpoint(dict(meta=meta, state_dict=converted), dst)
    if verbose:
        parts = Counter(k.split('.', 1)[0] for k in converted)
        numel = sum(v.numel() for v in converted.values())
        unused = [k for k in converted if k.startswith(UNUSED_AT_INFERENCE)]
        print(f'{src}: {len(official)} official keys -> {len(converted)} '
              f'tensors ({numel:,} elements)')
        for part, n in sorted(parts.items()):
            print(f'  {part:<14} {n:5d} tensors')
        print(f'  kept though unused at inference: {len(unused)} tensors')
        print(f'saved {dst}')
    return converted


def main():
    parser = argparse.ArgumentParser(
        description='Convert an official MagNet checkpoint to mmseg format')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    args = parser.parse_args()
    convert(args.src, args.dst)


if __name__ == '__main__':
    # a bad input (not an official checkpoint, truncated, unsafe...): one
    # error: line, exit 1 (--traceback or MAGNET_TRACEBACK=1 to see more)
    sys.exit(run_cli(main))
