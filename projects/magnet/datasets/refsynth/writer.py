"""Write the generated dataset in the REFER format (images,
``refs(<split_by>).p``, ``instances.json``)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from ...utils.errors import InvalidInputError
from .grammar import KIND_NAMES, parse_expression, render_expression
from .resolve import candidate_programs, is_unique
from .scene import SceneObject
from .synth_dataset import (GENERATOR_FILE, ImageRefs, RefsVariant,
                            generate_synthetic_dataset, generator_settings)

__all__ = ['GENERATOR_FILE', 'generator_settings', 'image_refs',
           'ReferVariant', 'generate_refer_dataset', 'default_settings']


def image_refs(objects: List[SceneObject], size: int,
               rng: np.random.Generator, max_refs: int,
               max_sents: int,
               kind_weights: Optional[Dict[str, float]] = None
               ) -> List[Tuple[int, List[Tuple[str, str]]]]:
    """Pick referred objects and 1..max_sents verified sentences each.

    The kinds of a target's sentences are distinct, drawn uniformly among
    the kinds it has programs for, or with probabilities proportional to
    ``kind_weights`` (``{kind name: weight}``, e.g. ``{'attribute': 3}``;
    missing kinds weigh 1; a kind of weight 0 is drawn only when nothing
    else is available).

    Returns:
        list: ``(target, [(sentence, kind name), ...])`` per referred object,
        the kind name being ``KIND_NAMES[program kind]``.
    """
    order = rng.permutation(len(objects))
    refs = []
    for target in order:
        if len(refs) == max_refs:
            break
        progs = candidate_programs(objects, int(target), size)
        kinds = [k for k in progs if progs[k]]
        if not kinds:
            continue
        n = int(rng.integers(1, max_sents + 1))
        sents: List[Tuple[str, str]] = []
        if kind_weights is None:
            chosen = rng.permutation(kinds)[:n]
        else:
            w = np.array([float(kind_weights.get(KIND_NAMES[k], 1.))
                          for k in kinds])
            if w.sum() <= 0:
                w = np.ones(len(kinds))
            m = min(n, int((w > 0).sum()))
            chosen = rng.choice(kinds, size=m, replace=False, p=w / w.sum())
        for kind in chosen:
            prog = progs[kind][int(rng.integers(len(progs[kind])))]
            sent = render_expression(prog, rng)
            # independent check: the *written* sentence denotes the target
            if not is_unique(parse_expression(sent), objects, int(target),
                              size):
                raise AssertionError(f'ambiguous expression: {sent!r}')
            if all(sent != s for s, _ in sents):
                sents.append((sent, KIND_NAMES[str(kind)]))
        refs.append((int(target), sents))
    return refs


class ReferVariant(RefsVariant):
    """The REFER format: one object per ref, ``refs(<split_by>).p``."""
    refs_files = ('refs({split_by}).p', )

    def __init__(self, train_kind_weights: Optional[Dict[str, float]]):
        self.train_kind_weights = train_kind_weights

    def check(self) -> None:
        unknown = set(self.train_kind_weights or {}) - set(
            KIND_NAMES.values())
        if unknown:
            raise InvalidInputError(
                f'train_kind_weights: unknown expression kinds '
                f'{sorted(unknown)}; the kinds are '
                f'{sorted(KIND_NAMES.values())}')

    def settings(self) -> dict:
        return dict(train_kind_weights=self.train_kind_weights)

    def image_refs(self, objects, img_size, rng, split, max_refs,
                   max_sents) -> ImageRefs:
        return [([target], [(sent, dict(kind=kind)) for sent, kind in sents])
                for target, sents in image_refs(
                    objects, img_size, rng, max_refs, max_sents,
                    self.train_kind_weights if split == 'train' else None)]


def default_settings() -> dict:
    """The settings :func:`generate_refer_dataset` records in
    :data:`GENERATOR_FILE` when called with its defaults (the keys every
    stamp has): a caller compares a stamp with these, updated by the
    options it passes, to know whether a dataset is the one it wants."""
    import inspect
    params = inspect.signature(generate_synthetic_dataset).parameters
    common = {k: p.default for k, p in params.items()
              if k not in ('out_dir', 'variant', 'progress')}
    return generator_settings(**dict(common, dataset_name='refsynth',
                                     **ReferVariant(None).settings()))


def generate_refer_dataset(out_dir: str, *, dataset_name: str = 'refsynth',
                           train_kind_weights: Optional[Dict[str,
                                                             float]] = None,
                           **options) -> dict:
    """Write a synthetic dataset in the REFER format
    (``<out>/<dataset_name>/refs(<split_by>).p``, ``instances.json``,
    ``generator.json``; images under ``<out>/images/mscoco/images/``).

    Args:
        out_dir (str): output root (becomes ``RefCOCODataset.data_root``).
        dataset_name (str): annotation folder name (``dataset`` argument).
        train_kind_weights (dict, optional): ``{kind name: weight}`` for
            the kinds of the *train* sentences (val / test keep the uniform
            draw, so every kind stays in val); None: uniform everywhere.
        **options: the other keyword arguments of
            :func:`generate_synthetic_dataset` (image counts, ``img_size``,
            ``seed``, ``split_by``, ...), with its defaults.

    Returns:
        dict: counts of images, annotations, refs and sentences per split.
    """
    return generate_synthetic_dataset(
        out_dir, ReferVariant(train_kind_weights), dataset_name=dataset_name,
        **options)
