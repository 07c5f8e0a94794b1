"""Write the generated GRES dataset in the gRefCOCO format (images,
``grefs(<split_by>).json`` and ``.p``, ``instances.json``)."""
from __future__ import annotations

import numbers
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...utils.errors import InvalidInputError
from .gres import TARGET_KINDS, image_gres_refs
from .grammar import SHAPES
from .writer import (_progress, _sentence_variants, add_image,
                     check_generator_arguments, generator_settings,
                     prepare_output, split_names, write_annotation_files)

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


def generate_gres_dataset(out_dir: str,
                          num_train_images: int = 2000,
                          num_val_images: int = 200,
                          num_test_images: int = 200,
                          img_size: int = 128,
                          seed: int = 0,
                          dataset_name: str = 'grefsynth',
                          split_by: str = 'unc',
                          image_format: str = 'jpg',
                          textured_prob: float = 0.5,
                          occlusion_prob: float = 0.25,
                          max_refs_per_image: int = 3,
                          max_sentences_per_ref: int = 3,
                          min_objects: int = 3,
                          max_objects: int = 6,
                          num_shapes: Tuple[int, int] = (2, 3),
                          num_colours: Tuple[int, int] = (2, 3),
                          target_mix: Optional[Dict[str, float]] = None,
                          progress: bool = True) -> dict:
    """Write a synthetic dataset in the gRefCOCO (GRES) format.

    Same scenes, images, masks and arguments as
    :func:`.writer.generate_refer_dataset` (see there), but each ref names
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
    check_generator_arguments(
        num_images=dict(num_train_images=num_train_images,
                        num_val_images=num_val_images,
                        num_test_images=num_test_images),
        img_size=img_size, image_format=image_format,
        probs=dict(textured_prob=textured_prob,
                   occlusion_prob=occlusion_prob),
        per_image=dict(max_refs_per_image=max_refs_per_image,
                       max_sentences_per_ref=max_sentences_per_ref),
        min_objects=min_objects, max_objects=max_objects,
        num_shapes=num_shapes, num_colours=num_colours,
        train_kind_weights=None)
    mix = check_target_mix(DEFAULT_TARGET_MIX if target_mix is None else
                           target_mix)
    settings = generator_settings(
        gres=True, num_train_images=num_train_images,
        num_val_images=num_val_images, num_test_images=num_test_images,
        img_size=img_size, seed=seed, dataset_name=dataset_name,
        split_by=split_by, image_format=image_format,
        textured_prob=textured_prob, occlusion_prob=occlusion_prob,
        max_refs_per_image=max_refs_per_image,
        max_sentences_per_ref=max_sentences_per_ref,
        min_objects=min_objects, max_objects=max_objects,
        num_shapes=num_shapes, num_colours=num_colours, target_mix=mix)
    img_dir, ann_dir = prepare_output(out_dir, dataset_name)
    splits = split_names(num_train_images, num_val_images, num_test_images)
    images: List[dict] = []
    annotations: List[dict] = []
    refs: List[dict] = []
    sent_id = 0
    summary: Dict[str, Dict[str, int]] = {}
    per_kind = {k: 0 for k in TARGET_KINDS}
    for index in _progress(range(len(splits)), progress):
        split = splits[index]
        rng = np.random.default_rng([seed, index])
        objects, obj_ann_ids, stem = add_image(
            rng, index, img_dir, images, annotations, img_size=img_size,
            image_format=image_format, textured_prob=textured_prob,
            scene_kw=dict(min_objects=min_objects, max_objects=max_objects,
                          occlusion_prob=occlusion_prob,
                          num_shapes=tuple(num_shapes),
                          num_colours=tuple(num_colours)))
        stats = summary.setdefault(split,
                                   dict(images=0, refs=0, sentences=0))
        stats['images'] += 1
        for targets, kind, sents in image_gres_refs(
                objects, img_size, rng, max_refs_per_image,
                max_sentences_per_ref, mix):
            sentences = []
            for sent, expr_kind in sents:
                sent_id += 1
                sentences.append(
                    dict(raw=_sentence_variants(sent, rng), sent=sent,
                         tokens=sent.split(), sent_id=sent_id, kind=kind,
                         expr_kind=expr_kind))
            ann_ids = [obj_ann_ids[t] for t in targets] or [-1]
            cat_ids = [SHAPES.index(objects[t].shape) + 1
                       for t in targets] or [-1]
            refs.append(
                dict(ref_id=len(refs) + 1, ann_id=ann_ids,
                     image_id=images[-1]['id'], category_id=cat_ids,
                     split=split,
                     sent_ids=[s['sent_id'] for s in sentences],
                     sentences=sentences,
                     file_name=f'{stem}_{ann_ids[0]}.{image_format}'))
            stats['refs'] += 1
            stats['sentences'] += len(sentences)
            per_kind[kind] += len(sentences)
    # the pickle first: a reader that prefers the JSON when it is newer
    # finds it so
    write_annotation_files(
        ann_dir, {f'grefs({split_by}).p': refs,
                  f'grefs({split_by}).json': refs},
        images, annotations, settings)
    return dict(out_dir=out_dir, dataset=dataset_name, split_by=split_by,
                annotations=len(annotations), splits=summary,
                sentences_per_kind=per_kind)
