"""How the generalised referring segmentation (GRES, gRefCOCO) scores are
counted from per-sentence counts, as ReLA's evaluator counts them
(``gres_model/evaluation/refer_evaluation.py`` of ReLA, after its "fix eval
metrics" commit; the line numbers below are those of that file).
:class:`~projects.magnet.evaluation.GRefSegMetric` (the mmengine metric)
collects the counts; this module only does the arithmetic, so that it can
be checked on its own.

No-target (an expression that names no object) is the *positive* class of
the no-target decision (ReLA :129-162):

* ``TP``: a no-target sentence predicted no-target;
* ``FN``: a no-target sentence predicted as naming a target;
* ``FP``: a target sentence predicted no-target;
* ``TN``: a target sentence predicted as naming a target.

Which class a prediction is in is decided by the predicted no-target flag
alone, never by whether the predicted mask is empty (ReLA :134 and :156
test ``pred_nt``): a target sentence whose mask is empty but which is not
flagged no-target is a ``TN`` scored by its mask (I = 0, U = its GT area).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ['gres_scores', 'no_target_counts', 'gres_sample_ious']


def no_target_counts(gt_no_target: np.ndarray,
                     pred_no_target: np.ndarray) -> Dict[str, int]:
    """The no-target confusion counts (no-target is the positive class).

    Args:
        gt_no_target (np.ndarray): (S,) bool, the truth of each sentence.
        pred_no_target (np.ndarray): (S,) bool, the predicted flag.

    Returns:
        dict: ``TP``, ``TN``, ``FP``, ``FN`` (ints), as ReLA :110 names
        them.
    """
    gt = np.asarray(gt_no_target, dtype=bool)
    pred = np.asarray(pred_no_target, dtype=bool)
    return OrderedDict(TP=int((gt & pred).sum()), TN=int((~gt & ~pred).sum()),
                       FP=int((~gt & pred).sum()), FN=int((gt & ~pred).sum()))


def gres_sample_ious(gt_no_target: np.ndarray, pred_no_target: np.ndarray,
                     intersections: np.ndarray, unions: np.ndarray
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sentence's IoU and its share of the cumulative I and U.

    Args:
        gt_no_target (np.ndarray): (S,) bool truth.
        pred_no_target (np.ndarray): (S,) bool predicted flag.
        intersections (np.ndarray): (S,) foreground intersection of the
            predicted mask and the GT mask, in pixels, whatever the flags.
        unions (np.ndarray): (S,) foreground union of the same masks.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: (S,) float IoU, (S,)
        int I and (S,) int U added to the cumulative sums:

        * no-target predicted no-target (TP): IoU 1, I = U = 0
          (ReLA :134-141);
        * no-target predicted target (FN): IoU 0, I = 0, U = the mask union,
          i.e. the predicted area as the GT is empty (ReLA :144-151);
        * target predicted no-target (FP): I = 0, U = the mask union as
          counted (the GT area plus whatever the predicted mask holds
          outside it), IoU = 0 (ReLA :156-158, :164-168);
        * target predicted target (TN): I and U of the masks,
          IoU = I / U, 0 when U = 0 (an empty GT and an empty
          prediction; ReLA :161-168).
    """
    gt = np.asarray(gt_no_target, dtype=bool)
    pred = np.asarray(pred_no_target, dtype=bool)
    inter = np.asarray(intersections, dtype=np.int64)
    union = np.asarray(unions, dtype=np.int64)
    inter = np.where(gt | pred, 0, inter)
    union = np.where(gt & pred, 0, union)
    iou = np.divide(inter, union, out=np.zeros(len(inter)),
                    where=union > 0)
    iou[gt & pred] = 1.
    return iou, inter, union


def _percent(count: float, total: float, name: str,
             undefined: List[str]) -> float:
    """``count / total * 100``; 0 (and ``name`` noted as undefined) when
    ``total`` is 0."""
    if total == 0:
        undefined.append(name)
        return 0.
    return float(count * 100. / total)


def gres_scores(gt_no_target: np.ndarray,
                pred_no_target: np.ndarray,
                intersections: np.ndarray,
                unions: np.ndarray,
                iou_thrs: Sequence[float] = (0.7, 0.8, 0.9)
                ) -> Tuple[Dict[str, float], List[str]]:
    """ReLA's GRES scores of a set of sentences, all in percent.

    Args:
        gt_no_target (np.ndarray): (S,) bool truth (metainfo ``no_target``).
        pred_no_target (np.ndarray): (S,) bool prediction
            (``pred_no_target``).
        intersections (np.ndarray): (S,) mask intersections (see
            :func:`gres_sample_ious`).
        unions (np.ndarray): (S,) mask unions.
        iou_thrs (Sequence[float]): thresholds of the ``Pr@t`` scores.

    Returns:
        tuple[dict, list[str]]: the scores, in ReLA's order and names, and
        the names of those that are undefined on this set (reported as 0):

        * ``gIoU``: mean per-sentence IoU over *all* sentences × 100
          (ReLA :190);
        * ``cIoU``: ΣI / ΣU × 100 (ReLA :191); undefined when ΣU = 0 (every
          sentence a no-target one predicted no-target);
        * ``T_acc``: TN / (TN + FP) × 100, the share of target sentences
          not flagged no-target (ReLA :195); undefined without target
          sentences;
        * ``N_acc``: TP / (TP + FN) × 100, the share of no-target sentences
          flagged no-target (ReLA :196). Both are 0 when the set has no
          no-target sentence, as ReLA :197-198 reports them. ReLA's
          evaluator prints these two as fractions; they are percentages
          here, like its paper's tables and the other scores;
        * ``Pr@t``: the share of *target* sentences (target predicted
          no-target included, with IoU 0) whose IoU >= t, × 100 (ReLA
          :172-174, :202); undefined without target sentences.
    """
    gt = np.asarray(gt_no_target, dtype=bool)
    counts = no_target_counts(gt, pred_no_target)
    iou, inter, union = gres_sample_ious(gt, pred_no_target, intersections,
                                         unions)
    undefined: List[str] = []
    scores: Dict[str, float] = OrderedDict()
    scores['gIoU'] = _percent(iou.sum(), len(iou), 'gIoU', undefined)
    scores['cIoU'] = _percent(inter.sum(), union.sum(), 'cIoU', undefined)
    if gt.any():
        scores['T_acc'] = _percent(counts['TN'],
                                   counts['TN'] + counts['FP'], 'T_acc',
                                   undefined)
        scores['N_acc'] = _percent(counts['TP'],
                                   counts['TP'] + counts['FN'], 'N_acc',
                                   undefined)
    else:  # ReLA :197-198: no no-target sentence, both reported as 0
        scores['T_acc'] = scores['N_acc'] = 0.
    target_iou = iou[~gt]
    for t in iou_thrs:
        name = f'Pr@{t:g}'
        scores[name] = _percent((target_iou >= t).sum(), len(target_iou),
                                name, undefined)
    return scores, undefined
