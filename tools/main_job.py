"""The main job on the embedded default (``make demo``).

1. generates the referring dataset in the REFER format if it is absent
   (``tools/dataset_converters/generate_refer_dataset.py``);
2. trains the CPU config with ``tools/train.py``;
3. evaluates the trained checkpoint on val / testA / testB with mmengine's
   Runner (the ``tools/test.py`` path) and prints the metric table;
4. writes prediction overlays (image, expression, predicted mask) as PNG.

Usage:
    python tools/main_job.py [--config CFG] [--work-dir DIR]
        [--num-overlays N] [--max-iters N] [--data-root DIR]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_CONFIG = osp.join(
    ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_cpu-500it_refsynth-128x128.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/main_job')
    parser.add_argument('--num-train-images', type=int, default=2000)
    parser.add_argument('--num-val-images', type=int, default=200)
    parser.add_argument('--num-test-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override the config\'s training length')
    parser.add_argument('--num-overlays', type=int, default=8)
    parser.add_argument(
        '--data-root',
        help='where the generated dataset lives / is written (default: the '
        'config\'s data_root)')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='extra key=value overrides for training and evaluation')
    return parser.parse_args()


def run(cmd):
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def data_root_overrides(args):
    """Point every dataset of the config at ``args.data_root``."""
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    if args.data_root is None:
        return cfg.train_dataloader.dataset['data_root'], []
    keys = ['train_dataloader.dataset', 'val_dataloader.dataset']
    test = cfg.test_dataloader.dataset
    if 'datasets' in test:
        keys += [f'test_dataloader.dataset.datasets.{i}'
                 for i in range(len(test['datasets']))]
    else:
        keys.append('test_dataloader.dataset')
    return args.data_root, [f'{k}.data_root={args.data_root}' for k in keys]


def ensure_dataset(args, data_root):
    refs = osp.join(data_root, 'refsynth', 'refs(unc).p')
    if osp.isfile(refs):
        print(f'dataset found: {refs}')
        return
    run([sys.executable,
         osp.join(ROOT, 'tools', 'dataset_converters',
                  'generate_refer_dataset.py'),
         '--out', data_root, '--seed', str(args.seed),
         '--num-train-images', str(args.num_train_images),
         '--num-val-images', str(args.num_val_images),
         '--num-test-images', str(args.num_test_images)])


def train(args, overrides):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), args.config,
           '--work-dir', args.work_dir]
    if overrides:
        cmd += ['--cfg-options'] + overrides
    run(cmd)
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def evaluate(args, checkpoint, overrides, val_only=False):
    """Test ``checkpoint`` with mmengine's Runner on the config's test
    splits, or on its val split only (``val_only``, no persistent
    workers)."""
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    from projects.magnet.compat import trust_directory
    trust_directory(args.work_dir)
    cfg = Config.fromfile(args.config)
    if overrides:  # the same key=value syntax as tools/train.py
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg.merge_from_dict(
            parser.parse_args(['--cfg-options'] + overrides).cfg_options)
    cfg.work_dir = args.work_dir
    cfg.load_from = checkpoint
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    if val_only:
        cfg.val_dataloader.persistent_workers = False
        cfg.test_dataloader = cfg.val_dataloader
        cfg.test_evaluator = cfg.val_evaluator
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    return runner, metrics


def print_table(metrics):
    splits = {}
    for key, value in metrics.items():
        split, _, name = key.rpartition('/')
        splits.setdefault(split or 'all', {})[name] = value
    names = ['oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8',
             'Pr@0.9']
    header = f'{"split":<22}' + ''.join(f'{n:>8}' for n in names)
    print('\n' + header + '\n' + '-' * len(header))
    for split, row in splits.items():
        print(f'{split:<22}' +
              ''.join(f'{row.get(n, float("nan")):8.2f}' for n in names))
    print()


def write_overlays(runner, out_dir, num):
    """Overlay the predicted mask and the expression on val images."""
    import numpy as np
    import torch
    from mmengine.visualization import Visualizer
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    vis = Visualizer(name=f'main_job_{time.time()}')
    step = max(1, len(dataset) // max(num, 1))
    written = []
    for i in range(0, min(len(dataset), step * num), step):
        data = dataset[i]
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
        with torch.no_grad():
            result = model.predict(batch['inputs'], batch['data_samples'])[0]
        img = data['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR->RGB
        img = np.ascontiguousarray(img)
        scale = max(1, 384 // max(img.shape[:2]))
        img = np.kron(img, np.ones((scale, scale, 1), dtype=img.dtype))
        pred = result.pred_sem_seg.data[0].bool().numpy()
        pred = np.kron(pred, np.ones((scale, scale), dtype=bool))
        gt = result.gt_sem_seg.data[0].numpy() == 1
        gt = np.kron(gt, np.ones((scale, scale), dtype=bool))
        vis.set_image(img)
        vis.draw_binary_masks(pred, colors=(255, 40, 40), alphas=0.55)
        # ground-truth outline (green) for comparison
        edge = gt ^ np.pad(gt, 1, mode='edge')[:-2, 1:-1]
        vis.draw_binary_masks(edge, colors=(0, 255, 0), alphas=1.0)
        text = result.metainfo.get('text', '')
        vis.draw_texts(text, np.array([4, 4]), font_sizes=12,
                       colors='white',
                       bboxes=dict(facecolor='black', alpha=0.6))
        path = osp.join(out_dir, f'overlay_{i:05d}.png')
        Image.fromarray(vis.get_image()).save(path)
        written.append(path)
    return written


def main():
    args = parse_args()
    start = time.time()
    overrides = []
    if args.max_iters:
        n = args.max_iters
        overrides = [f'max_iters={n}', f'train_cfg.max_iters={n}',
                     f'train_cfg.val_interval={n}',
                     f'default_hooks.checkpoint.interval={n}',
                     f'param_scheduler.1.end={n}']
    data_root, root_overrides = data_root_overrides(args)
    overrides += root_overrides + list(args.cfg_options)
    ensure_dataset(args, data_root)
    checkpoint = train(args, overrides)
    trained = time.time()
    runner, metrics = evaluate(args, checkpoint, overrides)
    print_table(metrics)
    paths = write_overlays(runner, osp.join(args.work_dir, 'overlays'),
                           args.num_overlays)
    print(f'wrote {len(paths)} overlays to '
          f'{osp.join(args.work_dir, "overlays")}')
    print(f'wall time: total {time.time() - start:.0f} s, training '
          f'{trained - start:.0f} s')


if __name__ == '__main__':
    main()
