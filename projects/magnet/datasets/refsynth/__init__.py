"""refsynth: a generated referring-segmentation dataset in the REFER format.

Scenes of coloured shapes on (optionally textured) backgrounds, with
referring expressions that need attributes ("the small red circle"),
relations ("the square left of the blue triangle", "the circle between the
red star and the green square"), ordinals ("the second circle from the
left") and comparisons ("the largest red shape"). Every expression is
verified to denote exactly its object by *parsing the written sentence
back* (:func:`parse_expression`) and resolving it against the scene
(:func:`resolve_expression`), with safety margins so that no other object is
a borderline match.

Output layout (the layout ``RefCOCODataset`` reads)::

    <out>/images/mscoco/images/train2014/SYN_train2014_<image_id>.jpg
    <out>/<name>/refs(<split_by>).p    # pickled list of plain ref dicts
    <out>/<name>/instances.json        # COCO images/annotations/categories

Each sentence dict of the refs has REFER's ``raw``, ``sent``, ``tokens`` and
``sent_id``, plus ``kind``: its expression kind (:data:`KIND_NAMES`).

Masks in ``instances.json``:

* an object drawn on top of nothing: one polygon;
* an object occluded only by objects lying entirely inside it: its own
  polygon followed by the occluders' polygons (multi-polygon). REFER's
  ``sum == 1`` rule turns the covered pixels into background, so the GT is
  exactly the visible region;
* an object partly occluded by others: compressed RLE of the visible region,
  or (half of them) uncompressed RLE with ``iscrowd=1`` (COCO's crowd form);
* a few unoccluded objects are stored as compressed RLE too.

Splits: ``train``, ``val``, and ``testA`` / ``testB``, which are the two
halves of the test images (no semantic difference, unlike RefCOCO's
people/objects). Generation is deterministic for a given seed (each image has
its own RNG stream ``default_rng([seed, image_index])``).

GRES variant (:func:`generate_gres_dataset`, gRefCOCO format): refs name
a set of objects, one, several or none (``ann_id == [-1]``); sentences
are verified the same way with set semantics (:mod:`.gres`: plurals,
"all", count words that must match exactly, absent attributes and
relations). Files ``<out>/<name>/grefs(<split_by>).json`` and ``.p``.

Modules: :mod:`.grammar` (vocabulary, program <-> text), :mod:`.resolve`
(what an expression denotes in a scene), :mod:`.scene` (objects and their
masks), :mod:`.render` (painting and COCO annotations), :mod:`.writer`
(the REFER files), :mod:`.gres` / :mod:`.gres_writer` (the
gRefCOCO variant). A developer tool beside the runtime package: the project
reads the REFER files it writes with the same ``RefCOCODataset`` as
RefCOCO, and the gRefCOCO files as gRefCOCO.
"""
from .grammar import (COLOURS, KIND_NAMES, SHAPES, parse_expression,
                      render_expression)
from .gres import (TARGET_KINDS, absent_descs, expression_kind,
                   image_gres_refs, multi_programs, no_target_variants,
                   parse_gres, render_gres, resolve_gres)
from .gres_writer import (DEFAULT_TARGET_MIX, check_target_mix,
                          generate_gres_dataset)
from .render import annotate, paint
from .resolve import candidate_programs, is_unique, resolve_expression
from .scene import SceneObject, generate_scene
from .writer import (GENERATOR_FILE, default_settings,
                     generate_refer_dataset, generator_settings, image_refs)

__all__ = [
    'SHAPES', 'COLOURS', 'KIND_NAMES', 'SceneObject', 'parse_expression',
    'render_expression', 'resolve_expression', 'candidate_programs',
    'is_unique', 'generate_scene', 'annotate', 'paint', 'image_refs',
    'generate_refer_dataset', 'generator_settings', 'GENERATOR_FILE',
    'default_settings',
    'TARGET_KINDS', 'parse_gres', 'render_gres', 'resolve_gres',
    'expression_kind', 'multi_programs', 'absent_descs',
    'no_target_variants', 'image_gres_refs',
    'generate_gres_dataset', 'check_target_mix', 'DEFAULT_TARGET_MIX'
]
