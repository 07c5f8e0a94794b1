"""Where the time of one MagNet training step goes: per part and per module.

Usage:
    python .dev_scripts/profile_train_step.py CONFIG [--batch B] \
        [--shape H W] [--threads T] [--repeat N] [--real-data] \
        [--depth D] [--top K] [--out FILE] [--cfg-options KEY=VALUE ...]

One step = ``model.loss`` (forward + losses) + ``parse_losses`` + backward
+ the config's optimizer update (``optim_wrapper``: ``scale_loss`` and
``backward``, then ``step`` and ``zero_grad``, as ``update_params`` does),
random weights (pretrained ``init_cfg`` entries dropped, as in
``benchmark_train.py``), after one warm-up step. Every number is the median
over ``--repeat`` steps:

* ``forward_parts_s``: inclusive wall time of the calls of each part
  within ``model.loss``; the methods are wrapped on the model's instances
  (and unwrapped after):

  - ``vision_stages``: ``backbone.embed`` (patch embed) and
    ``backbone.forward_blocks`` (Swin blocks);
  - ``language_stages``: ``text_encoder.embed`` and ``forward_stage``;
  - ``vision_fusion``: ``backbone.fuse`` (PWAM, alignment module, gate,
    patch merging);
  - ``language_fusion``: ``text_encoder.fuse``;
  - ``decode_head``: ``decode_head.loss`` / ``forward`` / ``loss_by_feat``;
  - ``alignment_loss``: ``sentence_embedding`` and ``alignment_loss``;
  - ``mask_grounding_pass``: the whole ``mask_grounding_loss`` call;
  - ``other``: the rest of ``model.loss`` (token stacking, glue).

  The four encoder parts are those of the main (first) encode only; the
  Mask Grounding pass is split in ``mask_grounding`` into its second
  ``encode`` (and that encode's four parts), its ``head``
  (``mask_grounding.loss``) and the rest (token masking). Parts of
  objectives the model does not have (``model.mask_grounding=None``, ...)
  are null;
* ``parse_losses_s``, ``backward_s``, ``optimizer_s`` (``step`` with the
  gradient clipping of the config + ``zero_grad``), ``step_s`` (all of it)
  and ``images_per_s``;
* ``data_loading`` (``--real-data``): the config's train dataloader with
  ``num_workers=0``, so that its cost shows: seconds per batch to fetch +
  collate (the dataset pipeline) and to run ``model.data_preprocessor``,
  over ``--repeat`` batches after a first one, and the share of a step
  (``per_batch_s / (per_batch_s + step_s)``, what a single-process loader
  would add). The steps then train on that first real batch (its shape,
  not ``--shape``). Without ``--real-data`` it is null and the steps use
  the dummy batch of ``benchmark.py``;
* ``modules``: inclusive forward wall time of every module with fewer
  than ``--depth`` dots in its name, summed over its calls in a step (both
  encodes; forward hooks of ``profile_inference.py``, ``--depth 0``: none);
* ``ops`` (``--top K`` > 0): the K ATen ops by self CPU time of one more
  step under ``torch.profiler`` (backward and optimizer ops included) and
  that step's matrix-product share (``matrix_s`` / ``other_s``).

A table goes to stderr; the JSON object is printed and written to
``--out``.
"""
import collections
import copy
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from profile_inference import profile_ops, time_modules  # noqa: E402

#: ``forward_parts_s`` keys, in the order of a step.
FORWARD_PARTS = ('vision_stages', 'language_stages', 'vision_fusion',
                 'language_fusion', 'decode_head', 'alignment_loss',
                 'mask_grounding_pass', 'other')
ENCODE_PARTS = FORWARD_PARTS[:4]
#: (attribute path of the object, method, part); the object may be absent.
TIMED_METHODS = (
    ('backbone', 'embed', 'vision_stages'),
    ('backbone', 'forward_blocks', 'vision_stages'),
    ('text_encoder', 'embed', 'language_stages'),
    ('text_encoder', 'forward_stage', 'language_stages'),
    ('backbone', 'fuse', 'vision_fusion'),
    ('text_encoder', 'fuse', 'language_fusion'),
    ('decode_head', 'loss', 'decode_head'),
    ('decode_head', 'forward', 'decode_head'),
    ('decode_head', 'loss_by_feat', 'decode_head'),
    ('', 'sentence_embedding', 'alignment_loss'),
    ('alignment_loss', 'forward', 'alignment_loss'),
    ('', 'encode', 'encode'),
    ('mask_grounding', 'loss', 'head'),
)
#: the call that switches the context of the parts inside it
MG_CALL = ('', 'mask_grounding_loss', 'mask_grounding_pass')
WIDTH = 52  # label column of the table


def parse_args(argv=None):
    from projects.magnet.utils import CfgOptionsAction
    p = B.tool_parser(
        __doc__, shape=None, batch=None,
        shape_help='dummy batch size (default: the config\'s img_scale, '
        'else 480 480); --real-data uses the pipeline\'s',
        batch_help='default: the config\'s train batch size')
    p.add_argument('--repeat', type=int, default=3,
                   help='timed steps (median), after one warm-up step')
    p.add_argument('--real-data', action='store_true',
                   help='time the config\'s train dataloader and train on '
                   'its first batch')
    p.add_argument('--depth', type=int, default=5,
                   help='deepest module name (dots) in "modules" (0: none)')
    p.add_argument('--top', type=int, default=0,
                   help='ATen ops of one profiled step (0: no op profile)')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                   help='override config entries, KEY=VALUE')
    return p.parse_args(argv)


class PartTimer:
    """Inclusive wall time of named method calls, by (context, part).

    Methods are wrapped on the instance (an attribute that shadows the
    class's method) and restored by :meth:`remove`. A part's nested calls
    (``decode_head.loss`` calling ``forward``) count once. A call wrapped
    with a ``context`` runs its inner calls in that context; its own time
    goes to the context it was called from.
    """

    def __init__(self):
        self.context = 'main'
        self.totals = collections.defaultdict(float)
        self._depth = collections.Counter()
        self._saved = []

    @property
    def attached(self) -> bool:
        return bool(self._saved)

    def wrap(self, obj, method: str, part: str, context: str = None):
        original = getattr(obj, method)

        def timed(*args, **kwargs):
            outer, caller = self._depth[part] == 0, self.context
            self._depth[part] += 1
            if context:
                self.context = context
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.context = caller
                self._depth[part] -= 1
                if outer:
                    self.totals[f'{caller}.{part}'] += elapsed

        self._saved.append((obj, method, vars(obj).get(method),
                            method in vars(obj)))
        setattr(obj, method, timed)

    def remove(self):
        for obj, method, value, had in reversed(self._saved):
            if had:
                setattr(obj, method, value)
            else:
                delattr(obj, method)
        self._saved.clear()

    def pop(self) -> dict:
        """The totals so far (then cleared)."""
        totals = dict(self.totals)
        self.totals.clear()
        return totals


def _attr(model, path: str):
    obj = model
    for name in filter(None, path.split('.')):
        obj = getattr(obj, name, None)
    return obj


def attach_timers(model) -> PartTimer:
    """A :class:`PartTimer` on the MagNet methods of ``TIMED_METHODS``."""
    missing = [m for m in ('encode', 'mask_grounding_loss')
               if not hasattr(model, m)]
    if missing:
        raise TypeError(f'{type(model).__name__} is not a MagNet segmentor '
                        f'(no {missing})')
    timer = PartTimer()
    for path, method, part in TIMED_METHODS:
        obj = _attr(model, path)
        if obj is not None:
            timer.wrap(obj, method, part)
    timer.wrap(model, MG_CALL[1], MG_CALL[2], context='mask_grounding')
    return timer


def data_loader(cfg, batch: int):
    """The config's train dataloader, ``batch`` per batch, no workers."""
    from mmengine.runner import Runner
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.update(batch_size=batch, num_workers=0, persistent_workers=False)
    loader.pop('prefetch_factor', None)
    return Runner.build_dataloader(
        loader, seed=cfg.get('randomness', {}).get('seed'))


def time_data_loading(model, loader, repeat: int):
    """First preprocessed batch (untimed, it pays the lazy set-ups) and the
    seconds to fetch + collate and to preprocess ``repeat`` more."""
    batches = iter(loader)
    first = model.data_preprocessor(next(batches), True)
    fetch, prep = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        data = next(batches)
        mid = time.perf_counter()
        model.data_preprocessor(data, True)
        fetch.append(mid - start)
        prep.append(time.perf_counter() - mid)
    return first, dict(
        batches=repeat, num_workers=0,
        fetch_collate_s=statistics.median(fetch),
        preprocess_s=statistics.median(prep),
        per_batch_s=statistics.median(f + p for f, p in zip(fetch, prep)))


def step_record(times: dict, parts: dict, with_mg: bool,
                with_align: bool) -> dict:
    """One step's timings from its phase times and its part totals."""
    def part(key):
        return parts.get(key, 0.0)

    forward = {name: part(f'main.{name}') for name in FORWARD_PARTS[:-1]}
    if not with_align:
        forward['alignment_loss'] = None
    if not with_mg:
        forward['mask_grounding_pass'] = None
    forward['other'] = times['forward_s'] - sum(
        v for v in forward.values() if v is not None)
    rec = dict(times, forward_parts_s=forward,
               main_encode_s=part('main.encode'), mask_grounding=None)
    if with_mg:
        mg = dict(encode_s=part('mask_grounding.encode'),
                  head_s=part('mask_grounding.head'),
                  encode_parts_s={
                      name: part(f'mask_grounding.{name}')
                      for name in ENCODE_PARTS
                  })
        mg['other_s'] = (forward['mask_grounding_pass'] - mg['encode_s'] -
                         mg['head_s'])
        rec['mask_grounding'] = mg
    return rec


def median_record(records: list):
    """Key-wise median of step records (nested dicts, None kept)."""
    first = records[0]
    if isinstance(first, dict):
        return {k: median_record([r[k] for r in records]) for k in first}
    if first is None:
        return None
    return round(statistics.median(records), 5)


def profile_train_step(args) -> dict:
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    batch = args.batch or cfg.get('train_dataloader', {}).get('batch_size',
                                                               1)
    shape = args.shape or tuple(cfg.get('img_scale', (480, 480)))[::-1]
    model = B.build_model(cfg, inference=False)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loading = None
    if args.real_data:
        data, loading = time_data_loading(model, data_loader(cfg, batch),
                                          args.repeat)
        inputs, samples = data['inputs'], data['data_samples']
    else:
        inputs, samples = B.dummy_batch(batch, shape, args.num_tokens,
                                        args.real_tokens, with_gt=True)
    with_mg = getattr(model, 'with_mask_grounding', False)
    with_align = getattr(model, 'with_alignment_loss', False)
    timer = None
    steps = []  # records of the timed steps (while timer is attached)

    def step():
        t0 = time.perf_counter()
        losses = model.loss(inputs, samples)
        t1 = time.perf_counter()
        loss, _ = model.parse_losses(losses)
        t2 = time.perf_counter()
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        t3 = time.perf_counter()
        if optim_wrapper.should_update():
            optim_wrapper.step()
            t4 = time.perf_counter()
            optim_wrapper.zero_grad()
        else:
            t4 = time.perf_counter()
        t5 = time.perf_counter()
        if timer is not None and timer.attached:
            steps.append(step_record(
                dict(step_s=t5 - t0, forward_s=t1 - t0,
                     parse_losses_s=t2 - t1, backward_s=t3 - t2,
                     optimizer_s=t5 - t3,
                     optimizer_parts_s=dict(step=t4 - t3, zero_grad=t5 - t4)),
                timer.pop(), with_mg, with_align))

    step()  # warm-up
    timer = attach_timers(model)
    try:
        seconds, counts, _ = time_modules(model, step, args.depth,
                                          args.repeat)
    finally:
        timer.remove()
    ops = matrix = None
    if args.top > 0:
        ops, matrix_s, other_s = profile_ops(step, args.top)
        matrix = dict(matrix_s=round(matrix_s, 4), other_s=round(other_s, 4),
                      matrix_share=round(
                          matrix_s / max(matrix_s + other_s, 1e-9), 4))
    res = median_record(steps)
    if loading is not None:
        loading = {k: round(v, 5) if isinstance(v, float) else v
                   for k, v in loading.items()}
        loading['share_of_step'] = round(
            loading['per_batch_s'] /
            max(loading['per_batch_s'] + res['step_s'], 1e-9), 4)
    modules = [
        dict(module=key, seconds=round(sec, 4), calls=counts[key])
        for key, sec in sorted(seconds.items(), key=lambda kv: -kv[1])
    ]
    return dict(
        config=args.config, batch=int(inputs.shape[0]),
        shape=list(inputs.shape[-2:]), real_data=args.real_data,
        threads=torch.get_num_threads(), torch=torch.__version__,
        repeat=args.repeat,
        times_s=[round(s['step_s'], 4) for s in steps],
        step_s=res['step_s'],
        images_per_s=round(inputs.shape[0] / res['step_s'], 3),
        forward_s=res['forward_s'],
        forward_parts_s=res['forward_parts_s'],
        main_encode_s=res['main_encode_s'],
        mask_grounding=res['mask_grounding'],
        parse_losses_s=res['parse_losses_s'],
        backward_s=res['backward_s'], optimizer_s=res['optimizer_s'],
        optimizer_parts_s=res['optimizer_parts_s'],
        data_loading=loading,
        matmul_peak_gflop_s=round(B.matmul_peak_gflops(), 1),
        num_parameters=sum(p.numel() for p in model.parameters()),
        modules=modules, ops=ops, matrix_split=matrix)


def print_table(res: dict, file=sys.stderr, top_modules: int = 8) -> None:
    """The step's split (seconds, % of the step) and the top modules."""
    step = res['step_s'] or 1e-9

    def row(name, sec, indent=1):
        label = f'{"  " * indent}{name:<{WIDTH - 2 * indent}}'
        if sec is None:
            print(f'{label} {"-":>8}', file=file)
        else:
            print(f'{label} {sec:8.4f} s {100 * sec / step:5.1f}%',
                  file=file)

    h, w = res['shape']
    print(f'{res["config"]}: {res["batch"]} x 3 x {h} x {w} '
          f'({"real data" if res["real_data"] else "dummy batch"}), '
          f'{res["threads"]} threads, torch {res["torch"]}, median of '
          f'{res["repeat"]}', file=file)
    row('step', res['step_s'], 0)
    row('forward (model.loss)', res['forward_s'])
    for name, sec in res['forward_parts_s'].items():
        row(name, sec, 2)
        if name == 'mask_grounding_pass' and res['mask_grounding']:
            mg = res['mask_grounding']
            row('encode', mg['encode_s'], 3)
            row('head', mg['head_s'], 3)
            row('other', mg['other_s'], 3)
    row('parse_losses', res['parse_losses_s'])
    row('backward', res['backward_s'])
    row('optimizer (step+zero_grad)', res['optimizer_s'])
    print(f'{res["images_per_s"]:.3f} images/s; matmul peak '
          f'{res["matmul_peak_gflop_s"]:.1f} GFLOP/s', file=file)
    loading = res['data_loading']
    if loading:
        print(f'data loading (num_workers=0): {loading["per_batch_s"]:.4f} '
              f's/batch (fetch+collate {loading["fetch_collate_s"]:.4f}, '
              f'preprocess {loading["preprocess_s"]:.4f}), '
              f'{100 * loading["share_of_step"]:.1f}% of step+data',
              file=file)
    if res['modules']:
        print('top modules (forward, inclusive, per step):', file=file)
        for m in res['modules'][:top_modules]:
            row(f'{m["module"]} x{m["calls"]}', m['seconds'])


def main(argv=None):
    res = B.run_tool(profile_train_step, parse_args(argv))
    print_table(res)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
