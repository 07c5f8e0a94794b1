"""Where does a trained model's Mask Grounding look?

For a checkpoint with a Mask Grounding head, on the val split:

* masked-token accuracy per word (the most frequent masked words) with the
  real image and mask, a blank image, a blank mask and both blank (the same
  tokens masked in every condition, all replaced by [MASK]);
* for every encoder output ``Y_s``: its spread over space (std over the
  pixels, averaged) and how much it changes when the image is blanked - a
  map that hardly varies over space or with the image carries no vision.

Usage:
    python .dev_scripts/probe_mask_grounding.py CONFIG CHECKPOINT
        [--max-batches N] [--top-words N] [--seed S] [--out FILE.json]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os.path as osp
import sys
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

#: Conditions for measuring whether grounding uses vision and the mask:
#: keyword arguments of :func:`masked_token_logits`.
CONDITIONS = {
    'real': dict(blank_image=False, blank_mask=False),
    'blank image': dict(blank_image=True, blank_mask=False),
    'blank mask': dict(blank_image=False, blank_mask=True),
    'blank both': dict(blank_image=True, blank_mask=True),
}


def masked_token_logits(model, inputs, data_samples, blank_image=False,
                        blank_mask=False, generator=None, mask_only=True):
    """Mask Grounding's predictions for masked tokens, from the model's
    public pieces: ``text_inputs`` -> ``mask_grounding.mask_tokens`` ->
    ``encode`` (of the blanked image, if asked) -> ``mask_grounding.
    predict`` with the ground-truth mask (or a blank one).

    Args:
        model (MagNet): with a ``mask_grounding`` head.
        inputs (Tensor): (B, 3, H, W) preprocessed images.
        data_samples (list[SegDataSample]): with tokens and ``gt_sem_seg``.
        blank_image (bool): zeros instead of the images (the mean image
            after normalisation): a control without vision.
        blank_mask (bool): zeros instead of the ground-truth masks.
        generator (torch.Generator, optional): which tokens are masked (the
            same generator state gives the same tokens in every condition).
        mask_only (bool): every selected token becomes [MASK] (for
            measuring; training keeps or replaces some).

    Returns:
        tuple: logits (M, V) and targets (M, ) of the masked tokens.
    """
    import torch
    head = getattr(model, 'mask_grounding', None)
    if head is None:
        raise RuntimeError('this model has no mask_grounding head')
    ids, attn = model.text_inputs([s.metainfo for s in data_samples],
                                  inputs.device)
    masked_ids, labels = head.mask_tokens(ids, attn, generator, mask_only)
    if blank_image:
        inputs = torch.zeros_like(inputs)
    enc = model.encode(inputs, masked_ids, attn, return_words=True)
    gt = torch.stack([s.gt_sem_seg.data for s in data_samples])
    masks = (gt.reshape(len(data_samples), 1, *gt.shape[-2:]) == 1).to(
        inputs.dtype)
    if blank_mask:
        masks = torch.zeros_like(masks)
    return head.predict(enc['words'], attn, enc['feats'][head.visual_level],
                        masks, labels, model.word_embeddings())



def parse_args():
    from projects.magnet.utils import CfgOptionsAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--max-batches', type=int, default=None)
    parser.add_argument('--top-words', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write the JSON here')
    parser.add_argument('--cfg-options', nargs='+',
                        action=CfgOptionsAction)
    return parser.parse_args()


def build(args):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from projects.magnet.compat import (install_checkpoint_loader,
                                        trust_directory)
    install_checkpoint_loader()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    trust_directory(osp.dirname(osp.abspath(args.checkpoint)))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = osp.join(osp.dirname(osp.abspath(args.checkpoint)),
                            'probe')
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    model = runner.model.eval()
    if not getattr(model, 'with_mask_grounding', False):
        raise ValueError(f'{args.config}: the model has no mask_grounding '
                         'head')
    return runner, model


def main():
    import torch
    from transformers import AutoTokenizer

    from projects.magnet.models.language.bert_encoder import \
        resolve_pretrained
    args = parse_args()
    runner, model = build(args)
    tokenize = [t for t in runner.cfg.val_dataloader.dataset.pipeline
                if t['type'] == 'TokenizeText'][0]
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_pretrained(tokenize['tokenizer']))

    counts = defaultdict(lambda: defaultdict(int))
    spread = defaultdict(list)
    change = defaultdict(list)
    gens = {k: torch.Generator().manual_seed(args.seed) for k in CONDITIONS}
    with torch.no_grad():
        for i, data in enumerate(runner.val_dataloader):
            if args.max_batches is not None and i >= args.max_batches:
                break
            batch = model.data_preprocessor(data, False)
            inputs, samples = batch['inputs'], batch['data_samples']
            for name, flags in CONDITIONS.items():
                logits, target = masked_token_logits(
                    model, inputs, samples, generator=gens[name], **flags)
                hits = (logits.argmax(-1) == target).tolist()
                for word, hit in zip(
                        tokenizer.convert_ids_to_tokens(target.tolist()),
                        hits):
                    counts[word][name] += hit
                    if name == 'real':
                        counts[word]['n'] += 1
            ids, mask = model.text_inputs([s.metainfo for s in samples],
                                          inputs.device)
            real = model.encode(inputs, ids, mask)['feats']
            blank = model.encode(torch.zeros_like(inputs), ids, mask)['feats']
            for s, (a, b) in enumerate(zip(real, blank)):
                spread[s].append(a.std(dim=(2, 3)).mean().item())
                change[s].append(((a - b).std() / a.std()).item())

    total = {k: sum(c[k] for c in counts.values()) for k in CONDITIONS}
    n = sum(c['n'] for c in counts.values())
    words = sorted(counts, key=lambda w: -counts[w]['n'])[:args.top_words]
    result = dict(
        tokens=n,
        accuracy={k: 100.0 * total[k] / max(n, 1) for k in CONDITIONS},
        per_word={w: dict(n=counts[w]['n'], **{
            k: 100.0 * counts[w][k] / counts[w]['n'] for k in CONDITIONS})
                  for w in words},
        feature_maps={
            f'Y{s + 1}': dict(
                spatial_std=sum(v) / len(v),
                relative_change_blank_image=sum(change[s]) / len(change[s]))
            for s, v in spread.items()
        })
    print(f'masked tokens: {n}')
    print(f'{"word":<14}{"n":>5}' + ''.join(f'{k:>13}' for k in CONDITIONS))
    for w in words:
        row = result['per_word'][w]
        print(f'{w:<14}{row["n"]:>5}' +
              ''.join(f'{row[k]:13.1f}' for k in CONDITIONS))
    print(f'{"all":<14}{n:>5}' +
          ''.join(f'{result["accuracy"][k]:13.1f}' for k in CONDITIONS))
    for name, stats in result['feature_maps'].items():
        print(f'{name}: spatial std {stats["spatial_std"]:.2e}, change with '
              f'a blank image {stats["relative_change_blank_image"]:.2e} '
              '(relative)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
