"""MagNet on ONNX Runtime: :class:`OnnxRuntimeSegmentor` and
:func:`make_session`.

:class:`OnnxRuntimeSegmentor` is an mmengine ``BaseModel`` that behaves as
the PyTorch segmentor at inference (``test_step`` -> ``SegDataSample`` s with
``seg_logits`` / ``pred_sem_seg`` and, for a gRefCOCO head, the no-target
decision), with the network replaced by an ONNX Runtime session on a file
written by :func:`~.onnx_export.export_onnx`. The data preprocessor (built
from the config), the text stacking and the postprocessing are the PyTorch
segmentor's own code, so the two backends differ only in the graph's
arithmetic.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModel

from ..models.segmentors.magnet import MagNet
from ..models.segmentors.no_target import apply_no_target, check_whole_mode
from ..utils.errors import InputFileNotFoundError, InvalidInputError
from .backends import require
from .export_graph import INPUT_NAMES, NO_TARGET_OUTPUT

__all__ = ['OnnxRuntimeSegmentor', 'make_session', 'GRAPH_LEVELS']

#: ``graph_optimization_level`` names -> ONNX Runtime's enum member names
GRAPH_LEVELS = {
    'disable': 'ORT_DISABLE_ALL',
    'basic': 'ORT_ENABLE_BASIC',
    'extended': 'ORT_ENABLE_EXTENDED',
    'all': 'ORT_ENABLE_ALL',
}


def make_session(onnx_file: str,
                 threads: Optional[int] = None,
                 graph_optimization_level: str = 'all',
                 providers: Optional[Sequence[str]] = None,
                 inter_op_threads: Optional[int] = None):
    """An ``onnxruntime.InferenceSession`` on ``onnx_file``.

    Args:
        onnx_file (str): the exported model.
        threads (int, optional): ``intra_op_num_threads`` (None: ONNX
            Runtime's default, one per physical core).
        graph_optimization_level (str): one of :data:`GRAPH_LEVELS`.
        providers (Sequence[str], optional): execution providers (default:
            ``CPUExecutionProvider``).
        inter_op_threads (int, optional): ``inter_op_num_threads``.

    Raises:
        BackendNotInstalledError: onnxruntime is not installed.
        InputFileNotFoundError: no such file.
        InvalidInputError: an unknown optimisation level or provider.
    """
    ort = require('onnxruntime')
    onnx_file = os.fspath(onnx_file)
    if not osp.isfile(onnx_file):
        raise InputFileNotFoundError(f'ONNX file not found: {onnx_file}')
    if graph_optimization_level not in GRAPH_LEVELS:
        raise InvalidInputError(
            f'graph_optimization_level must be one of '
            f'{", ".join(GRAPH_LEVELS)}, got {graph_optimization_level!r}')
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_LEVELS[graph_optimization_level])
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if inter_op_threads is not None:
        options.inter_op_num_threads = int(inter_op_threads)
    providers = list(providers or ['CPUExecutionProvider'])
    unknown = set(providers) - set(ort.get_available_providers())
    if unknown:
        raise InvalidInputError(
            f'ONNX Runtime providers {sorted(unknown)} are not available '
            f'here; available: {ort.get_available_providers()}')
    return ort.InferenceSession(onnx_file, sess_options=options,
                                providers=providers)


class OnnxRuntimeSegmentor(BaseModel):
    """A MagNet inference model run by ONNX Runtime.

    Args:
        onnx_file (str): a file written by ``tools/deployment/
            pytorch2onnx.py``.
        data_preprocessor (dict | nn.Module): the config's
            ``model.data_preprocessor`` (built from mmseg's registry).
        test_cfg (dict): the config's ``model.test_cfg`` (``threshold``,
            ``output_size``, ``no_target_threshold``...).
        align_corners (bool, optional): the decode head's (used when
            resizing to the original image, as the PyTorch segmentor does);
            None: the value the export recorded (``magnet.align_corners``).
        session_options: keyword arguments of :func:`make_session`
            (``threads``, ``graph_optimization_level``, ``providers``).
    """

    # The PyTorch segmentor's own input stacking and postprocessing (they
    # only read ``test_cfg`` and ``align_corners``), so that both backends
    # turn a network output into the same data samples.
    text_inputs = MagNet.text_inputs
    postprocess_result = MagNet.postprocess_result

    def __init__(self,
                 onnx_file: str,
                 data_preprocessor: dict,
                 test_cfg: Optional[dict] = None,
                 align_corners: Optional[bool] = None,
                 **session_options) -> None:
        if isinstance(data_preprocessor, dict):
            # mmseg's registry (SegDataPreProcessor), whatever the scope
            from mmseg.registry import MODELS
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor)
        self.onnx_file = os.fspath(onnx_file)
        self.session = make_session(self.onnx_file, **session_options)
        self.test_cfg = ConfigDict(test_cfg or {})
        self.test_cfg.setdefault('threshold', 0.5)
        self.test_cfg.setdefault('output_size', 'input')
        meta = self.session.get_modelmeta().custom_metadata_map
        if align_corners is None:
            align_corners = meta.get('magnet.align_corners') == 'true'
        self.align_corners = bool(align_corners)
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if missing:
            raise InvalidInputError(
                f'{self.onnx_file}: not a MagNet export (inputs '
                f'{sorted(inputs)}, expected {list(INPUT_NAMES)}); write it '
                'with tools/deployment/pytorch2onnx.py')
        self.input_shapes = {n: list(inputs[n].shape) for n in INPUT_NAMES}
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def predicts_no_target(self) -> bool:
        """Whether the graph has the ``no_target_score`` output."""
        return NO_TARGET_OUTPUT in self.output_names

    def _check_shape(self, name: str, array: np.ndarray) -> None:
        """Refuse an input the (static) graph was not exported for."""
        want = self.input_shapes[name]
        got = list(array.shape)
        ok = len(want) == len(got) and all(
            not isinstance(w, int) or w == g for w, g in zip(want, got))
        if not ok:
            raise InvalidInputError(
                f'{self.onnx_file} was exported for {name} of shape {want}, '
                f'got {got}: export it again with --shape / the config of '
                'this pipeline (or --dynamic-batch for other batch sizes)')

    @property
    def graph_batch(self) -> Optional[int]:
        """The graph's fixed batch size (None: a dynamic batch axis)."""
        dim = self.input_shapes['image'][0]
        return dim if isinstance(dim, int) else None

    def run(self, image: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The graph's outputs by name (CPU tensors) for a batch.

        A graph exported with a fixed batch ``b`` runs a batch of ``B``
        (a multiple of ``b``) in ``B / b`` session runs.
        """
        feeds = {
            'image': image.detach().cpu().float().contiguous().numpy(),
            'input_ids': input_ids.detach().cpu().long().numpy(),
            'attention_mask': attention_mask.detach().cpu().long().numpy(),
        }
        step = self.graph_batch or len(feeds['image'])
        total = len(feeds['image'])
        if step != total and total % step == 0:
            chunks = [{k: v[i:i + step] for k, v in feeds.items()}
                      for i in range(0, total, step)]
        else:
            chunks = [feeds]
        outs: Dict[str, list] = {n: [] for n in self.output_names}
        for chunk in chunks:
            for name, array in chunk.items():
                self._check_shape(name, array)
            for n, o in zip(self.output_names,
                            self.session.run(self.output_names, chunk)):
                outs[n].append(o)
        return {n: torch.from_numpy(np.concatenate(v))
                for n, v in outs.items()}

    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'predict'):
        if mode != 'predict':
            raise InvalidInputError(
                f'the ONNX Runtime model runs inference only (mode '
                f'"predict"), got mode={mode!r}')
        return self.predict(inputs, data_samples)

    def predict(self, inputs: torch.Tensor, data_samples: List) -> List:
        """As ``MagNet.predict``: data samples with ``seg_logits``,
        ``pred_sem_seg`` (and the no-target fields for a gRefCOCO head)."""
        if data_samples is None:
            raise InvalidInputError('OnnxRuntimeSegmentor.predict needs data '
                                    'samples carrying input_ids/'
                                    'attention_mask')
        metas = [s.metainfo for s in data_samples]
        ids, mask = self.text_inputs(metas, torch.device('cpu'))
        out = self.run(inputs, ids, mask)
        samples = self.postprocess_result(out['mask_logits'], data_samples)
        if not self.predicts_no_target:
            return samples
        check_whole_mode(self.test_cfg)
        return apply_no_target(
            samples, out[NO_TARGET_OUTPUT],
            float(self.test_cfg.get('no_target_threshold', 0.5)))
