"""The part of the synthetic dataset generators that the REFER and the
GRES formats share: scene images, COCO annotations, argument checks, the
annotation files and the generation loop (:func:`generate_synthetic_dataset`,
given a :class:`RefsVariant`)."""
from __future__ import annotations

import json
import numbers
import os
import os.path as osp
import pickle
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ...utils.errors import InvalidInputError
from ...utils.output_files import atomic_write, check_output_dir
from .grammar import COLOURS, SHAPES
from .render import annotate, paint
from .scene import SceneObject, generate_scene


def _sentence_variants(sent: str, rng: np.random.Generator) -> str:
    """``raw`` form of a sentence: sometimes capitalised / with a period."""
    raw = sent
    if rng.random() < 0.3:
        raw = raw[0].upper() + raw[1:]
    if rng.random() < 0.2:
        raw += '.'
    return raw


#: The settings a dataset was generated with (beside its refs).
GENERATOR_FILE = 'generator.json'


def generator_settings(**kwargs) -> dict:
    """The JSON form of :func:`generate_refer_dataset`'s arguments (tuples
    as lists), as written to :data:`GENERATOR_FILE`."""
    out = {}
    for key, value in kwargs.items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_generator_arguments(num_images: Dict[str, int], img_size: int,
                              image_format: str, probs: Dict[str, float],
                              per_image: Dict[str, int], min_objects: int,
                              max_objects: int, num_shapes: Tuple[int, int],
                              num_colours: Tuple[int, int]) -> None:
    """Refuse the common arguments of :func:`generate_synthetic_dataset`
    that cannot make a dataset, before anything is drawn or written.

    Raises:
        InvalidInputError (a ValueError): the message names the argument,
            its value and what was expected.
    """
    for name, value in num_images.items():
        if not _is_int(value) or value < 0:
            raise InvalidInputError(
                f'{name} must be an int >= 0, got {value!r}')
    if not _is_int(img_size) or img_size < 16:
        raise InvalidInputError(
            f'img_size must be an int >= 16 (pixels), got {img_size!r}')
    if image_format not in ('jpg', 'png'):
        raise InvalidInputError(
            f'image_format must be jpg or png, got {image_format!r}')
    for name, value in probs.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) \
                or not 0.0 <= value <= 1.0:
            raise InvalidInputError(
                f'{name} must be a probability in [0, 1], got {value!r}')
    for name, value in per_image.items():
        if not _is_int(value) or value < 1:
            raise InvalidInputError(
                f'{name} must be an int >= 1, got {value!r}')
    if not (_is_int(min_objects) and _is_int(max_objects)
            and 1 <= min_objects <= max_objects):
        raise InvalidInputError(
            f'need 1 <= min_objects <= max_objects, got min_objects='
            f'{min_objects!r}, max_objects={max_objects!r}')
    for name, value, most in (('num_shapes', num_shapes, len(SHAPES)),
                              ('num_colours', num_colours, len(COLOURS))):
        if not (isinstance(value, (tuple, list)) and len(value) == 2
                and all(_is_int(v) for v in value)
                and 1 <= value[0] <= value[1] <= most):
            raise InvalidInputError(
                f'{name} must be an inclusive range (lo, hi) with '
                f'1 <= lo <= hi <= {most}, got {value!r}')


def _progress(iterator, progress: bool):
    if progress:
        from tqdm import tqdm
        return tqdm(iterator, desc='generating', unit='img')
    return iterator


def prepare_output(out_dir: str, dataset_name: str) -> Tuple[str, str]:
    """Check (and create) the output folders before any scene is drawn.

    Returns:
        tuple[str, str]: the image folder and the annotation folder.
    """
    # refuse an output root that is a file, under a file or not writable
    # before any scene is drawn
    check_output_dir(out_dir, what='dataset output folder')
    img_dir = osp.join(out_dir, 'images', 'mscoco', 'images', 'train2014')
    ann_dir = osp.join(out_dir, dataset_name)
    check_output_dir(img_dir, what='dataset image folder')
    check_output_dir(ann_dir, what='dataset annotation folder')
    # the settings stamp of a dataset about to be overwritten goes first
    # (and is written last): an interrupted run leaves no stamp that would
    # vouch for a mix of old and new files
    stamp = osp.join(ann_dir, GENERATOR_FILE)
    if osp.exists(stamp):
        os.remove(stamp)
    return img_dir, ann_dir


def split_names(num_train: int, num_val: int, num_test: int) -> List[str]:
    """The split of each image index (test halved into testA / testB)."""
    n_test_a = num_test // 2
    return (['train'] * num_train + ['val'] * num_val + ['testA'] * n_test_a
            + ['testB'] * (num_test - n_test_a))


def add_image(rng: np.random.Generator, index: int, img_dir: str,
              images: List[dict], annotations: List[dict], img_size: int,
              image_format: str, textured_prob: float,
              scene_kw: dict) -> Tuple[List[SceneObject], List[int], str]:
    """Draw, paint and save image ``index`` and append its COCO image and
    annotation entries (annotation ids continue ``annotations``).

    Returns:
        tuple: the scene objects, their annotation ids (in object order)
        and the image file stem.
    """
    objects, masks = generate_scene(rng, img_size, **scene_kw)
    textured = bool(rng.random() < textured_prob)
    pixels = paint(objects, masks, rng, img_size, textured)
    image_id = index + 1
    stem = f'SYN_train2014_{image_id:012d}'
    file_name = f'{stem}.{image_format}'
    # 4:4:4 chroma: small shapes keep their colour up to the edges
    save_kw = dict(quality=95, subsampling=0) \
        if image_format == 'jpg' else {}
    # atomically: an interrupted generation leaves no truncated image
    with atomic_write(osp.join(img_dir, file_name)) as f:
        Image.fromarray(pixels).save(
            f, format='JPEG' if image_format == 'jpg' else 'PNG', **save_kw)
    images.append(
        dict(id=image_id, file_name=file_name, height=img_size,
             width=img_size))
    obj_ann_ids = []
    for obj, ann in zip(objects, annotate(objects, masks, rng)):
        ann_id = len(annotations) + 1
        obj_ann_ids.append(ann_id)
        ann.pop('visible')
        annotations.append(
            dict(
                id=ann_id,
                image_id=image_id,
                category_id=SHAPES.index(obj.shape) + 1,
                **ann))
    return objects, obj_ann_ids, stem


def write_annotation_files(ann_dir: str, refs_files: Dict[str, list],
                           images: List[dict], annotations: List[dict],
                           settings: dict) -> None:
    """Write the refs files (``{name: refs}``; ``.p``: pickle, else JSON),
    ``instances.json`` and :data:`GENERATOR_FILE`, each atomically: an
    interrupted run never leaves a half-written annotation file that a
    later run would take for a dataset."""
    categories = [
        dict(id=i + 1, name=s, supercategory='shape')
        for i, s in enumerate(SHAPES)
    ]
    for name, refs in refs_files.items():
        if name.endswith('.p'):
            with atomic_write(osp.join(ann_dir, name)) as f:
                pickle.dump(refs, f, protocol=2)  # REFER files: protocol 2
        else:
            with atomic_write(osp.join(ann_dir, name), 'w') as f:
                json.dump(refs, f)
    with atomic_write(osp.join(ann_dir, 'instances.json'), 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations,
                categories=categories), f)
    with atomic_write(osp.join(ann_dir, GENERATOR_FILE), 'w') as f:
        json.dump(settings, f, indent=1, sort_keys=True)


#: The refs of one image: per ref, the indices of the objects it names
#: (empty: none) and its sentences as ``(sentence, fields)``, ``fields``
#: being what the sentence's dict gets after ``raw`` / ``sent`` /
#: ``tokens`` / ``sent_id``.
ImageRefs = List[Tuple[List[int], List[Tuple[str, Dict[str, str]]]]]


class RefsVariant:
    """What a dataset format adds to :func:`generate_synthetic_dataset`:
    how an image's refs are drawn, their files and extra settings."""
    #: refs file names (``{split_by}`` filled in; ``.p``: pickle, else
    #: JSON), written in this order
    refs_files: Tuple[str, ...] = ()
    #: ``ann_id`` / ``category_id`` of a ref are lists (``[-1]``: no
    #: target) rather than one int
    multi_target = False

    def check(self) -> None:
        """Refuse the variant's own arguments (after the common ones)."""

    def settings(self) -> dict:
        """Settings written to :data:`GENERATOR_FILE` beside the common
        ones."""
        return {}

    def image_refs(self, objects: List[SceneObject], img_size: int,
                   rng: np.random.Generator, split: str, max_refs: int,
                   max_sents: int) -> ImageRefs:
        raise NotImplementedError

    def summary(self, refs: List[dict]) -> dict:
        """Entries the returned summary gets beside the common ones."""
        return {}


def generate_synthetic_dataset(out_dir: str,
                               variant: RefsVariant,
                               num_train_images: int = 2000,
                               num_val_images: int = 200,
                               num_test_images: int = 200,
                               img_size: int = 128,
                               seed: int = 0,
                               dataset_name: str = 'refsynth',
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
                               progress: bool = True) -> dict:
    """Write a synthetic dataset in the format of ``variant`` (the common
    part of :func:`generate_refer_dataset` and
    :func:`.gres_writer.generate_gres_dataset`).

    Args:
        out_dir (str): output root (becomes the dataset's ``data_root``).
        variant (RefsVariant): the format (refs drawn, files written).
        num_train_images / num_val_images / num_test_images (int): images
            per split; test images are halved into ``testA`` / ``testB``.
        img_size (int): square image side in pixels.
        seed (int): base seed; the output is a function of all arguments.
        dataset_name (str): annotation folder name (``dataset`` argument).
        split_by (str): written in the refs file names.
        image_format (str): ``'jpg'`` (quality 95) or ``'png'``.
        textured_prob (float): probability of a textured background.
        occlusion_prob (float): probability that a new object is placed
            overlapping an existing one.
        max_refs_per_image (int): refs per image (at most).
        max_sentences_per_ref (int): sentences per ref (at most).
        min_objects / max_objects (int): objects per scene (inclusive).
        num_shapes / num_colours (tuple[int, int]): inclusive range of
            distinct shapes / colours per scene.
        progress (bool): show a tqdm progress bar.

    The arguments are written to ``<out>/<dataset_name>/generator.json``
    (the dataset is a function of them), so a caller can tell whether an
    existing dataset was made with the settings it wants.

    Returns:
        dict: counts of images, annotations, refs and sentences per split
        (and what ``variant.summary`` adds).
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
        num_shapes=num_shapes, num_colours=num_colours)
    variant.check()
    settings = generator_settings(
        num_train_images=num_train_images, num_val_images=num_val_images,
        num_test_images=num_test_images, img_size=img_size, seed=seed,
        dataset_name=dataset_name, split_by=split_by,
        image_format=image_format, textured_prob=textured_prob,
        occlusion_prob=occlusion_prob, max_refs_per_image=max_refs_per_image,
        max_sentences_per_ref=max_sentences_per_ref, min_objects=min_objects,
        max_objects=max_objects, num_shapes=num_shapes,
        num_colours=num_colours, **variant.settings())
    img_dir, ann_dir = prepare_output(out_dir, dataset_name)
    splits = split_names(num_train_images, num_val_images, num_test_images)
    images: List[dict] = []
    annotations: List[dict] = []
    refs: List[dict] = []
    sent_id = 0
    summary: Dict[str, Dict[str, int]] = {}
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
        for targets, sents in variant.image_refs(
                objects, img_size, rng, split, max_refs_per_image,
                max_sentences_per_ref):
            sentences = []
            for sent, fields in sents:
                sent_id += 1
                sentences.append(
                    dict(raw=_sentence_variants(sent, rng), sent=sent,
                         tokens=sent.split(), sent_id=sent_id, **fields))
            ann_ids = [obj_ann_ids[t] for t in targets] or [-1]
            cat_ids = [SHAPES.index(objects[t].shape) + 1
                       for t in targets] or [-1]
            multi = variant.multi_target
            refs.append(
                dict(ref_id=len(refs) + 1,
                     ann_id=ann_ids if multi else ann_ids[0],
                     image_id=images[-1]['id'],
                     category_id=cat_ids if multi else cat_ids[0],
                     split=split,
                     sent_ids=[s['sent_id'] for s in sentences],
                     sentences=sentences,
                     file_name=f'{stem}_{ann_ids[0]}.{image_format}'))
            stats['refs'] += 1
            stats['sentences'] += len(sentences)
    write_annotation_files(
        ann_dir,
        {name.format(split_by=split_by): refs for name in variant.refs_files},
        images, annotations, settings)
    return dict(out_dir=out_dir, dataset=dataset_name, split_by=split_by,
                annotations=len(annotations), splits=summary,
                **variant.summary(refs))
