"""Which features carry the no-target decision? Linear probes.

For a GRES config (its val dataloader's dataset, with the split changed)
and a checkpoint (or the untrained model: ``--checkpoint none``), the
features of ``--num-train`` train sentences and of every sentence of
``--split`` are collected:

* ``query``: the decoder query that the class branch reads (64-d for the
  CPU model);
* ``sentence``: the language encoder's words after the last fusion,
  averaged over the real tokens;
* ``vision_mean`` / ``vision_max``: the last backbone stage, pooled;
* ``mask``: the predicted mask's max / mean probability and area;
* ``alignment``: the pixel-to-sentence cosine similarity of the alignment
  loss (pixel embeddings vs the projected sentence embedding): its max,
  the mean of its top 2 % and its mean over the pixels;
* ``class_branch``: the model's own ``no_target_score``.

A logistic regression (standardised features, L-BFGS, a small L2 penalty)
is fitted on the train features and its ROC AUC on the evaluation split is
printed per feature set. With the untrained model, ``sentence`` is close to
a text-only probe: an AUC well above 0.5 there means the words alone tell
no-target expressions apart (a dataset bias, not grounding).

Usage:
    python .dev_scripts/probe_no_target.py CONFIG CHECKPOINT|none
        [--num-train 2000] [--split val] [--data-root DIR] [--out FILE.json]
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

FEATURES = ('query', 'sentence', 'vision_mean', 'vision_max', 'mask',
            'alignment', 'class_branch')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="a checkpoint, or 'none'")
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--split', default='val')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--data-root', default=None,
                        help="the dataset's data_root (default: the "
                        "config's)")
    parser.add_argument('--out', default=None)
    return parser.parse_args(argv)


def build_model(cfg, checkpoint):
    from mmseg.registry import MODELS

    from projects.magnet.compat.checkpoint import load_weights
    model = MODELS.build(cfg.model)
    if checkpoint != 'none':
        state = load_weights(checkpoint)
        model.load_state_dict(state.get('state_dict', state))
    return model.eval()


def collect(model, cfg, split, limit, batch_size):
    """``({feature: (N, D) array}, (N, ) bool no_target)`` of up to
    ``limit`` sentences of ``split`` (a fixed random subset)."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, split=split))
    order = np.random.RandomState(0).permutation(len(dataset))[:limit]
    seen = {}
    cls_embed = model.decode_head.transformer_decoder.cls_embed
    hook = cls_embed.register_forward_hook(
        lambda m, i, o: seen.__setitem__('query', i[0][:, 0].detach()))
    feats = {k: [] for k in FEATURES + ('alignment_decision', )}
    labels = []
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = pseudo_collate(
                [dataset[int(i)] for i in order[start:start + batch_size]])
            data = model.data_preprocessor(batch, False)
            metas = [s.metainfo for s in data['data_samples']]
            ids, mask = model.text_inputs(metas, data['inputs'].device)
            enc = model.encode(data['inputs'], ids, mask, return_words=True)
            out = model.decode_head.forward(enc['feats'])
            feats['query'].append(seen['query'])
            real = mask[..., None].float()
            feats['sentence'].append((enc['words'] * real).sum(1) /
                                     real.sum(1))
            last = enc['feats'][-1]
            feats['vision_mean'].append(last.mean((2, 3)))
            feats['vision_max'].append(last.amax((2, 3)))
            prob = out['pred_masks'][:, 0].sigmoid()
            feats['mask'].append(torch.stack(
                [prob.amax((1, 2)), prob.mean((1, 2)),
                 (prob > 0.5).float().mean((1, 2))], 1))
            pix = torch.nn.functional.normalize(
                out['mask_features'].flatten(2), dim=1)
            txt = torch.nn.functional.normalize(
                model.sentence_embedding(enc['words'], mask), dim=-1)
            sim = torch.einsum('bdn,bd->bn', pix, txt)
            top = sim.topk(max(1, sim.shape[1] // 50), dim=1).values
            feats['alignment'].append(torch.stack(
                [sim.amax(1), top.mean(1), sim.mean(1)], 1))
            # "no pixel is the sentence" at the loss's scale
            scale = getattr(model.alignment_loss, 'scale', None)
            feats['alignment_decision'].append(
                (sim.amax(1, keepdim=True) * scale).sigmoid() < 0.5
                if scale is not None else torch.zeros(len(sim), 1))
            feats['class_branch'].append(
                out['pred_logits'].float().softmax(-1)[:, :, -1].amin(1,
                                                                      True))
            labels += [bool(m['no_target']) for m in metas]
    hook.remove()
    return ({k: torch.cat(v).numpy() for k, v in feats.items()},
            np.array(labels))


def roc_auc(labels, scores):
    """Mann-Whitney form of the ROC AUC (ties count half)."""
    from scipy.stats import rankdata
    ranks = rankdata(scores)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def probe_auc(train_x, train_y, test_x, test_y):
    """AUC on the test set of a logistic regression fitted on the train
    set."""
    import torch
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xs = torch.tensor((train_x - mean) / std).float()
    xt = torch.tensor((test_x - mean) / std).float()
    ys = torch.tensor(train_y).float()
    linear = torch.nn.Linear(xs.shape[1], 1)
    optim = torch.optim.LBFGS(linear.parameters(), max_iter=200)

    def closure():
        optim.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            linear(xs)[:, 0], ys) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optim.step(closure)
    with torch.no_grad():
        return roc_auc(test_y, linear(xt)[:, 0].numpy())


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects.magnet  # noqa: F401
    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)
    if args.data_root:
        cfg.val_dataloader.dataset.data_root = args.data_root
    init_default_scope('mmseg')
    model = build_model(cfg, args.checkpoint)
    train_x, train_y = collect(model, cfg, 'train', args.num_train,
                               args.batch_size)
    test_x, test_y = collect(model, cfg, args.split, 10**9, args.batch_size)
    result = dict(train_no_target_share=float(train_y.mean()),
                  test_no_target_share=float(test_y.mean()), auc={})
    print(f'no-target share: train {train_y.mean():.3f} '
          f'({len(train_y)} sentences), {args.split} {test_y.mean():.3f} '
          f'({len(test_y)})')
    for key in FEATURES:
        if key == 'class_branch':  # the model's own score, no probe
            auc = roc_auc(test_y, test_x[key][:, 0])
        else:
            auc = probe_auc(train_x[key], train_y, test_x[key], test_y)
        result['auc'][key] = auc
        print(f'{key:<13} dim {train_x[key].shape[1]:4d}  '
              f'{args.split} AUC {auc:.3f}')
    decision = test_x['alignment_decision'][:, 0].astype(bool)
    n_acc = 100 * decision[test_y].mean()
    t_acc = 100 * (~decision[~test_y]).mean()
    result.update(alignment_n_acc=float(n_acc), alignment_t_acc=float(t_acc))
    print(f'no pixel agrees with the sentence (max sigmoid < 0.5): '
          f'N_acc {n_acc:.1f} T_acc {t_acc:.1f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
