"""Write the generated GRES dataset in the gRefCOCO format (images,
``grefs(<split_by>).json`` and ``.p``, ``instances.json``)."""
from __future__ import annotations

import numbers
from typing import Dict, List, Optional

import numpy as np

from ...utils.errors import InvalidInputError
from .gres import TARGET_KINDS, image_gres_refs
from .synth_dataset import (ImageRefs, RefsVariant,
                            generate_synthetic_dataset)

#: default ``target_mix``: weights of the target kinds of the refs
DEFAULT_TARGET_MIX = {'single': 0.4, 'multi': 0.4, 'no-target': 0.2}


def check_target_mix(target_mix) -> Dict[str, float]:
    """Refuse a ``target_mix`` that is not ``{kind: weight >= 0}`` over
    :data:`TARGET_KINDS` with a positive sum; return it as floats
    (missing kinds weigh 0).

    Raises:
        InvalidInputError (a ValueError): naming the key or value.
    """
    if not isinstance(target_mix, dict) or not target_mix:
        raise InvalidInputError(
            f'target_mix must be a non-empty dict {{kind: weight}} over '
            f'{list(TARGET_KINDS)}, got {target_mix!r}')
    unknown = sorted(set(target_mix) - set(TARGET_KINDS))
    if unknown:
        raise InvalidInputError(
            f'target_mix: unknown target kinds {unknown}; the kinds are '
            f'{list(TARGET_KINDS)}')
    for kind, weight in target_mix.items():
        if not isinstance(weight, numbers.Real) or isinstance(weight, bool) \
                or not np.isfinite(weight) or weight < 0:
            raise InvalidInputError(
                f'target_mix[{kind!r}] must be a finite number >= 0, got '
                f'{weight!r}')
    if sum(target_mix.values()) <= 0:
        raise InvalidInputError(
            f'target_mix: the weights sum to 0, got {target_mix!r}')
    return {k: float(target_mix.get(k, 0.)) for k in TARGET_KINDS}


class GresVariant(RefsVariant):
    """The gRefCOCO format: refs naming a set of objects,
    ``grefs(<split_by>).p`` and ``.json``."""
    # the pickle first: a reader that prefers the JSON when it is newer
    # finds it so
    refs_files = ('grefs({split_by}).p', 'grefs({split_by}).json')
    multi_target = True

    def __init__(self, target_mix: Optional[Dict[str, float]]):
        self.target_mix = target_mix
        self.mix: Dict[str, float] = {}

    def check(self) -> None:
        self.mix = check_target_mix(DEFAULT_TARGET_MIX if self.target_mix
                                    is None else self.target_mix)

    def settings(self) -> dict:
        return dict(gres=True, target_mix=self.mix)

    def image_refs(self, objects, img_size, rng, split, max_refs,
                   max_sents) -> ImageRefs:
        return [(list(targets),
                 [(sent, dict(kind=kind, expr_kind=expr_kind))
                  for sent, expr_kind in sents])
                for targets, kind, sents in image_gres_refs(
                    objects, img_size, rng, max_refs, max_sents, self.mix)]

    def summary(self, refs: List[dict]) -> dict:
        per_kind = {k: 0 for k in TARGET_KINDS}
        for ref in refs:
            for sentence in ref['sentences']:
                per_kind[sentence['kind']] += 1
        return dict(sentences_per_kind=per_kind)


def generate_gres_dataset(out_dir: str, *, dataset_name: str = 'grefsynth',
                          target_mix: Optional[Dict[str, float]] = None,
                          **options) -> dict:
    """Write a synthetic dataset in the gRefCOCO (GRES) format.

    Same scenes, images, masks and arguments as
    :func:`.writer.generate_refer_dataset` (the other keyword arguments,
    ``**options``, are those of
    :func:`.synth_dataset.generate_synthetic_dataset`), but each ref names
    a *set* of objects: one, several ("all the red shapes", "both
    circles", "the two squares on the left") or none ("the green
    triangle" in a scene without one; ``ann_id == category_id == [-1]``).
    Every sentence is verified by parsing it back and resolving it on the
    scene to exactly its target set (:mod:`.gres`).

    Args:
        target_mix (dict, optional): ``{'single' | 'multi' | 'no-target':
            weight}``: each ref slot of an image draws its target kind
            with these probabilities (missing kinds weigh 0; default
            :data:`DEFAULT_TARGET_MIX`); a slot whose kind has no usable
            expression in the scene stays empty, so the realised mix (in
            the returned summary) can differ.

    Files: ``<out>/<dataset_name>/grefs(<split_by>).json`` and the same
    list pickled as ``grefs(<split_by>).p``, ``instances.json``,
    ``generator.json``; images as the REFER variant. Ref fields:
    ``ref_id``, ``image_id``, ``split``, ``file_name``, ``ann_id`` (list
    of int, ascending; ``[-1]``: no target), ``category_id`` (list, one
    per ``ann_id``; ``[-1]``: no target), ``sent_ids`` and ``sentences``
    (``raw``, ``sent``, ``tokens``, ``sent_id``, ``kind``: the target
    kind, ``expr_kind``: attribute / relation / between / ordinal /
    comparison / position).

    Returns:
        dict: counts of images, refs and sentences per split and the
        number of sentences per target kind.
    """
    return generate_synthetic_dataset(
        out_dir, GresVariant(target_mix), dataset_name=dataset_name,
        **options)
