"""Make a numeric reference fixture by running the OFFICIAL MagNet code.

Developer tool (not used by the tests). It needs a copy of the official
repository (yxchng/mask-grounding, AGPL-3.0): a checkout or a bare git mirror.
The official sources are extracted to a temporary directory, patched there
(width constants only, see ``PATCHES``), and run in this process with small
stand-in ``timm``/``mmseg`` modules written to that temporary directory and
``fvcore`` (+ ``requests``) pip-installed into ``--deps``. Nothing of the
official code is copied into this project: the fixture is data produced by
running it.

The model is test.py's ``WrapperModel`` (class extracted with ``ast``) around
``lavt(pretrained='', args).backbone``, ``MultiModalBert(BertConfig(...))``
and ``MaskFormerHead(cfg, input_shape)``, built the way test.py's ``main``
does, with every floating-point weight replaced by seeded random values.
Outputs and intermediates are recorded with forward hooks / method wrappers
around the unmodified forward. Writes ``official_tiny.pth``, ``inputs.pt``,
``outputs.pt``, ``config.json`` and ``README.md`` to ``--out``.

Example (the defaults make ``tests/data/official_small``)::

    python .dev_scripts/make_official_fixture.py \\
        --official-repo /path/to/mask-grounding --out tests/data/official_small
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import shlex
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from official_fixture.build import (build_model, model_args,  # noqa: E402
                                    randomize_)
from official_fixture.constants import (HARNESS_NOTES, MEAN,  # noqa: E402
                                        OFFICIAL_REPO_NAME, PATCHES,
                                        RANDOMIZATION, STD)
from official_fixture.readme import write_readme  # noqa: E402
from official_fixture.record import (gate_check, make_inputs,  # noqa: E402
                                     maxabs, numerical_probes, run_recorded,
                                     train_mode_check)
from official_fixture.sources import (apply_patches,  # noqa: E402
                                      ensure_deps, extract_official,
                                      extract_wrapper_model,
                                      write_stand_ins)


# --------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--official-repo', required=True,
                   help='official mask-grounding checkout or git mirror')
    p.add_argument('--out', required=True, help='fixture directory')
    p.add_argument('--deps', default=osp.join(tempfile.gettempdir(),
                                              'official_deps'),
                   help='pip --target dir for fvcore & co (installed if '
                        'missing)')
    p.add_argument('--fixture-set', default='small')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--image-size', type=int, nargs=2, default=[112, 112])
    p.add_argument('--seq-len', type=int, default=20)
    p.add_argument('--real-tokens', type=int, nargs='+', default=[9, 14],
                   help='real tokens per sample (its length = batch)')
    p.add_argument('--embed-dim', type=int, default=4,
                   help='Swin embed width (4 keeps the fixture < 3 MB)')
    p.add_argument('--depths', type=int, nargs=4, default=[1, 1, 2, 1])
    p.add_argument('--num-heads', type=int, nargs=4, default=[1, 2, 4, 8])
    p.add_argument('--bert-hidden', type=int, default=32)
    p.add_argument('--bert-layers', type=int, default=4)
    p.add_argument('--bert-heads', type=int, default=2)
    p.add_argument('--bert-intermediate', type=int, default=64)
    p.add_argument('--vocab-size', type=int, default=2000)
    p.add_argument('--token-low', type=int, default=1000,
                   help='word ids are drawn in [token-low, vocab-size)')
    p.add_argument('--max-position', type=int, default=32)
    p.add_argument('--pwam-idx', type=int, nargs=4, default=[1, 2, 3, 4])
    p.add_argument('--lang-proj-out', type=int, default=None,
                   help='default: bert hidden')
    p.add_argument('--conv-dim', type=int, default=32)
    p.add_argument('--mask-dim', type=int, default=32)
    p.add_argument('--hidden-dim', type=int, default=32)
    p.add_argument('--head-heads', type=int, default=8)
    p.add_argument('--enc-layers', type=int, default=2)
    p.add_argument('--enc-ffn', type=int, default=64)
    p.add_argument('--dec-layers', type=int, default=5,
                   help='cfg DEC_LAYERS (builds DEC_LAYERS-1 layers)')
    p.add_argument('--dec-ffn', type=int, default=64)
    p.add_argument('--num-queries', type=int, default=1)
    p.add_argument('--cpu-isa', choices=('avx2', 'native'), default='avx2',
                   help='avx2: re-exec with ATEN_CPU_CAPABILITY=avx2 '
                        'DNNL_MAX_CPU_ISA=AVX2 (reproducible on AVX2 and '
                        'AVX-512 machines; the shared fixture was made so)')
    p.add_argument('--keep-src', action='store_true',
                   help='keep the patched official sources (prints where)')
    return p.parse_args(argv)


ISA_ENV = {'avx2': dict(ATEN_CPU_CAPABILITY='avx2', DNNL_MAX_CPU_ISA='AVX2')}


def _pin_isa(isa):
    """Re-exec with the CPU kernels pinned (float results depend on them)."""
    want = ISA_ENV.get(isa, {})
    if all(os.environ.get(k) == v for k, v in want.items()):
        return
    env = dict(os.environ, **want)
    os.execve(sys.executable, [sys.executable, osp.abspath(__file__),
                               *sys.argv[1:]], env)


def main(argv=None):
    o = parse_args(argv)
    if argv is None:
        _pin_isa(o.cpu_isa)
    isa_note = (f'CPU kernels pinned with {ISA_ENV[o.cpu_isa]} (set by the '
                'harness), so that the float results do not depend on '
                'whether the machine has AVX-512.' if o.cpu_isa in ISA_ENV
                else 'CPU kernels not pinned (native ISA of the machine).')
    command = 'python .dev_scripts/make_official_fixture.py ' + \
        ' '.join(shlex.quote(a) for a in (argv if argv is not None
                                          else sys.argv[1:]))
    torch.set_num_threads(o.threads)
    work = tempfile.mkdtemp(prefix='official_magnet_')
    src, stubs = osp.join(work, 'src'), osp.join(work, 'stand_ins')
    try:
        commit = extract_official(o.official_repo, src)
        apply_patches(src)
        write_stand_ins(stubs)
        ensure_deps(o.deps)
        for mod in [m for m in sys.modules
                    if m.split('.')[0] in ('timm', 'mmseg', 'bert', 'lib',
                                           'modeling')]:
            del sys.modules[mod]
        sys.path[:0] = [stubs, src, o.deps]
        WrapperModel = extract_wrapper_model(osp.join(src, 'test.py'))
        margs = model_args(o)

        torch.manual_seed(o.seed)
        model = build_model(margs, WrapperModel)
        n_random, untouched = randomize_(model)
        model.eval()
        inputs = make_inputs(o)
        outputs = run_recorded(model, inputs)

        os.makedirs(o.out, exist_ok=True)
        ckpt = osp.join(o.out, 'official_tiny.pth')
        state = model.state_dict()
        torch.save({'model': state}, ckpt)
        torch.save(inputs, osp.join(o.out, 'inputs.pt'))
        torch.save(outputs, osp.join(o.out, 'outputs.pt'))

        gates, gate_downstream = gate_check(model, inputs, outputs)
        probes, thread_noise = numerical_probes(model, inputs, outputs,
                                                o.threads)
        train = train_mode_check(model, inputs, outputs, o.seed)

        # reload into a fresh model and rerun: must be bit-identical
        fresh = build_model(margs, WrapperModel)
        fresh.load_state_dict(torch.load(ckpt, weights_only=True)['model'])
        again = run_recorded(fresh.eval(), inputs)
        reload_diff = max(maxabs(again[k], outputs[k]) for k in outputs
                          if outputs[k].is_floating_point())
        print(f'reload check: max abs diff {reload_diff}')
        assert reload_diff == 0, reload_diff

        pd = model.classifier.pixel_decoder
        msda = pd.transformer.encoder.layers[0].self_attn
        layers = model.image_model.layers
        import numpy
        cfg = {
            'fixture_set': o.fixture_set,
            'seed': o.seed,
            'batch': len(o.real_tokens),
            'image_hw': list(o.image_size),
            'seq_len': o.seq_len,
            'real_tokens_per_sample': list(o.real_tokens),
            'model': margs,
            'derived': {
                'swin_dims': list(model.image_model.num_features),
                'swin_window_size': layers[0].window_size,
                'swin_shift_size': layers[0].shift_size,
                'pyramid_psizes': list(layers[0].psizes),
                'pyramid_reduction_dims': [lay.reduction_dim
                                           for lay in layers],
                'mask2former_decoder_layers_built':
                    model.classifier.predictor.num_layers,
                'pixel_decoder_num_fpn_levels': pd.num_fpn_levels,
                'msdeformattn_n_levels_heads_points':
                    [msda.n_levels, msda.n_heads, msda.n_points],
                'swin_drop_path_rate': margs['swin']['drop_path_rate'],
                'bert_dropout': margs['bert']['hidden_dropout_prob'],
            },
            'image_preprocessing': {
                'mean': list(MEAN), 'std': list(STD),
                'formula': 'image = (image_uint8.float32 / 255 - mean) / std'
                           '   (per channel, float32)'},
            'token_layout': f'input_ids[b] = [101, n-2 random ids in '
                            f'[{o.token_low},{o.vocab_size}), 102, 0...]; '
                            'attention_mask[b,:n]=1',
            'randomization': RANDOMIZATION,
            'checkpoint_format': "torch.save({'model': WrapperModel."
                                 "state_dict()}) - loaded by model."
                                 "load_state_dict(checkpoint['model']) as "
                                 'in test.py',
            'postprocessing': "pred_masks -> F.interpolate(size=image_hw, "
                              "mode='bilinear', align_corners=True) -> "
                              'semantic_inference (softmax(pred_logits, '
                              'dim=1)[...,1:] -> ones, times sigmoid) -> '
                              'prob; mask = prob > 0.5',
            'torch_version': torch.__version__,
            'numpy_version': numpy.__version__,
            'python_version': platform.python_version(),
            'torch_num_threads': o.threads,
            'official_source': {'repo': OFFICIAL_REPO_NAME,
                                'commit': commit},
            'patches': [{k: p[k] for k in ('id', 'file', 'change', 'why')}
                        for p in PATCHES],
            'harness_notes': HARNESS_NOTES + [isa_note],
            'state_dict': {
                'num_keys': len(state),
                'numel': sum(v.numel() for v in state.values()),
                'num_parameters': sum(p.numel()
                                      for p in model.parameters())},
            'randomized_keys': n_random,
            'untouched_non_float_keys': untouched,
            'gate_check': gates,
            'train_mode_check': train,
            'numerical_probes': probes,
            'inputs': {k: dict(shape=list(v.shape),
                               dtype=str(v.dtype).replace('torch.', ''))
                       for k, v in inputs.items()},
            'outputs': {k: dict(shape=list(v.shape),
                                dtype=str(v.dtype).replace('torch.', ''))
                        for k, v in outputs.items()},
        }
        with open(osp.join(o.out, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=1)
        sizes = {n: osp.getsize(osp.join(o.out, n))
                 for n in ('official_tiny.pth', 'inputs.pt', 'outputs.pt',
                           'config.json')}
        readme = osp.join(o.out, 'README.md')
        doc_cfg = dict(cfg, token_low=o.token_low, _reload_maxabs=reload_diff,
                       _gate_downstream=gate_downstream,
                       _thread_noise=thread_noise,
                       _isa_note=isa_note)
        write_readme(readme, doc_cfg, command, sizes)
        sizes['README.md'] = osp.getsize(readme)
        write_readme(readme, doc_cfg, command, sizes)  # with its own size
        print(json.dumps(sizes), 'total', sum(sizes.values()))
    finally:
        if o.keep_src:
            print('patched official sources kept in', work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
