"""Inference on your own image and expressions: :class:`MagNetInferencer`.

Over 400 lines: one mmengine ``BaseInferencer``, whose stages are methods
of one class (its model build, pipeline and result are in :mod:`.model`,
:mod:`.pipeline` and :mod:`.result`).

An mmengine ``BaseInferencer``::

    from projects.magnet.apis import MagNetInferencer

    inferencer = MagNetInferencer(CONFIG, CHECKPOINT, device='cpu')
    result = inferencer('photo.jpg', ['the man in red', 'the dog'],
                        out_file='overlay.png')
    result.masks   # (2, H, W) bool, at the image's size
    result.probs   # (2, H, W) float32 probabilities
    result.no_target  # (2,) bool, "refers to nothing" (None without
                      # a no-target head, see RefSegResult)

The pipeline (``_init_pipeline``) is the config's test pipeline with
:class:`LoadInferenceImage` as loader (see :mod:`.pipeline`). Sizes and the
threshold are decided by the model's ``test_cfg`` alone: for each forward
the inferencer sets ``test_cfg.output_size`` (``'original'`` by default,
or ``'input'``: the segmentor's own words, :data:`OUTPUT_SIZES`) and, if
asked, ``test_cfg.threshold``, and restores them afterwards.

Bad inputs raise :class:`~projects.magnet.utils.UserError` s before any
work: expressions (none, empty, no word; also after tokenisation: only
``[UNK]`` / special tokens), ``output_size``, ``threshold``, ``out_file``
(checked by :func:`~projects.magnet.utils.check_output_file`; the drawing is
written atomically).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope

from ..utils.errors import InvalidInputError
from ..utils.output_files import (IMAGE_EXTENSIONS, check_output_file,
                                  save_image)
from .model import (OUTPUT_SIZES, as_config, call_test_cfg, check_device,
                    default_dataset_meta, init_model, model_test_cfg,
                    override_test_cfg)
from .pipeline import (ExpressionError, ImageInput, build_inference_pipeline,
                       check_expressions)
from .result import RefSegResult

__all__ = ['MagNetInferencer', 'inference_model', 'OUTPUT_SIZES']


def output_paths(out_file: str, count: int) -> List[str]:
    """The files ``out_file`` stands for with ``count`` results: itself
    for one, ``<name>_<i><ext>`` for several."""
    if count <= 1:
        return [out_file]
    root, ext = osp.splitext(out_file)
    return [f'{root}_{i}{ext}' for i in range(count)]


class MagNetInferencer(BaseInferencer):
    """Config + checkpoint -> masks (and pictures) for your own inputs.

    Args:
        model: config file / Config / dict, or a model built by
            :func:`init_model` (with its ``cfg``).
        checkpoint (str, optional): weights (None: init weights, warned).
            Not with a model instance.
        device (str, optional): ``'cpu'`` or ``'cuda:N'``; defaults to
            ``'cuda:0'`` when CUDA is available, else ``'cpu'`` (a model
            instance stays where it is).
        cfg_options (dict, optional): config overrides (not with a model
            instance).
        batch_size (int): (image, expression) pairs per forward pass.
        pipeline (Compose, optional): instead of the one built from the
            config (:func:`build_inference_pipeline`).
        scope (str): registry scope. Defaults to ``'mmseg'``.
        show_progress (bool): a progress bar over the batches.
        backend (str): ``'pytorch'`` (default) or ``'onnxruntime'``: the
            network is then the ONNX file given as ``checkpoint`` (written
            by ``tools/deployment/pytorch2onnx.py`` from this config), run
            by ONNX Runtime; the pipeline, data preprocessor and
            postprocessing stay the config's
            (:class:`~projects.magnet.deployment.OnnxRuntimeSegmentor`).
            Needs the optional ``onnxruntime``
            (``requirements/deploy.txt``).
        backend_options (dict, optional): for ``'onnxruntime'``: ``threads``
            (intra-op threads), ``graph_optimization_level`` (``'all'``,
            ``'extended'``, ``'basic'``, ``'disable'``), ``providers``.

    Call: ``inferencer(image, expressions, **kwargs)`` with one image and
    one or N expressions -> :class:`RefSegResult`; or
    ``inferencer(dict(img=image, text=expressions))`` / a list of such dicts
    -> one result / a list of results. Keyword arguments:

    * ``channel_order`` (``'bgr'``): order of an array image;
    * ``threshold`` (float): ``test_cfg.threshold`` for this call;
    * ``output_size``: ``'original'`` (default: the image's size) or
      ``'input'`` (the network input size), as the segmentor's
      ``test_cfg.output_size``; ``'model'`` (the config's own, deprecated)
      still works with a ``DeprecationWarning``;
    * ``out_file`` / ``show`` / ``alpha``: draw the masks
      (:meth:`visualize`);
    * ``batch_size``, ``return_datasamples`` (list of ``SegDataSample``
      instead of results).
    """

    preprocess_kwargs: set = {'channel_order'}
    forward_kwargs: set = {'threshold', 'output_size'}
    visualize_kwargs: set = {'out_file', 'show', 'alpha'}
    postprocess_kwargs: set = set()

    def __init__(self,
                 model: Union[str, Config, dict, torch.nn.Module],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 batch_size: int = 8,
                 pipeline: Optional[Compose] = None,
                 scope: str = 'mmseg',
                 show_progress: bool = False,
                 backend: str = 'pytorch',
                 backend_options: Optional[dict] = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or batch_size < 1:
            raise InvalidInputError(
                f'batch_size must be an integer >= 1, got {batch_size!r}')
        from ..deployment.backends import BACKENDS
        if backend not in BACKENDS:
            raise InvalidInputError(
                f'backend must be one of {", ".join(map(repr, BACKENDS))}, '
                f'got {backend!r}')
        if backend != 'pytorch' and (isinstance(model, torch.nn.Module)
                                     or checkpoint is None):
            raise InvalidInputError(
                f'backend={backend!r} runs an exported file: give the '
                'config and the .onnx file written by tools/deployment/'
                'pytorch2onnx.py as checkpoint')
        if backend_options and backend == 'pytorch':
            raise InvalidInputError(
                'backend_options go with backend="onnxruntime"')
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        init_default_scope(scope)
        self.batch_size = batch_size
        self._given_model = None
        self._given_pipeline = pipeline
        self._visualizer: Any = None
        if isinstance(model, torch.nn.Module):
            if checkpoint is not None or cfg_options:
                raise InvalidInputError(
                    'checkpoint / cfg_options go with a config, not with a '
                    'built model')
            if not hasattr(model, 'cfg') and pipeline is None:
                raise InvalidInputError(
                    'a model instance needs a "cfg" attribute (build it '
                    'with init_model) or a pipeline')
            self._given_model = model
            cfg = as_config(getattr(model, 'cfg', None) or {})
            if device is None:
                device = str(next(model.parameters()).device)
        else:
            cfg = as_config(model)
            if cfg_options:
                cfg.merge_from_dict(cfg_options)
        if device is None:
            device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
        super().__init__(cfg, checkpoint, device, scope, show_progress)
        #: the config's own ``test_cfg.output_size``
        self.model_output_size = model_test_cfg(self.model).get(
            'output_size', 'input')

    # ------------------------------------------------------------ set-up
    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str = 'cpu') -> torch.nn.Module:
        """:func:`init_model` (inference build, strict loading, the
        project's checkpoint loader), or the given model on ``device``."""
        if self._given_model is not None:
            return self._given_model.to(check_device(device)).eval()
        if self.backend == 'onnxruntime':
            return self._init_onnxruntime_model(cfg, weights, device)
        return init_model(cfg, weights, device)

    def _init_onnxruntime_model(self, cfg: Config, onnx_file: str,
                                device: str) -> torch.nn.Module:
        """:class:`OnnxRuntimeSegmentor` on ``onnx_file`` with the config's
        data preprocessor and ``test_cfg``; a CUDA device selects ONNX
        Runtime's CUDA provider."""
        from ..deployment import OnnxRuntimeSegmentor
        dev = check_device(device)
        options = dict(self.backend_options)
        if dev.type == 'cuda':
            options.setdefault('providers', ['CUDAExecutionProvider'])
        if 'model' not in cfg:
            raise InvalidInputError('the config has no "model"')
        model_cfg = cfg.model
        model = OnnxRuntimeSegmentor(
            onnx_file,
            data_preprocessor=model_cfg.get('data_preprocessor'),
            test_cfg=model_cfg.get('test_cfg'),
            **options)
        model.dataset_meta = default_dataset_meta()
        model.cfg = cfg
        return model.eval()

    def _init_pipeline(self, cfg: Config) -> Compose:
        """:func:`build_inference_pipeline` of the config."""
        if self._given_pipeline is not None:
            return self._given_pipeline
        return build_inference_pipeline(cfg)

    def _init_collate(self, cfg: Config):
        """The config's ``test_dataloader.collate_fn``, else
        ``pseudo_collate`` (without mmengine's registry-scope warning)."""
        if (cfg.get('test_dataloader') or {}).get('collate_fn') is None:
            return pseudo_collate
        return super()._init_collate(cfg)

    def _init_visualizer(self, cfg: Config) -> None:
        """None: :attr:`visualizer` is built on first use."""
        return None

    @property
    def visualizer(self):
        """A :class:`RefSegLocalVisualizer` (built on first use)."""
        if self._visualizer is None:
            from ..visualization import RefSegLocalVisualizer
            self._visualizer = RefSegLocalVisualizer(
                name=f'magnet_inferencer_{id(self)}')
        return self._visualizer

    @visualizer.setter
    def visualizer(self, value) -> None:
        self._visualizer = value

    # -------------------------------------------------------------- call
    def __call__(self,
                 inputs: Union[ImageInput, dict, Sequence[dict]],
                 expressions: Union[str, Sequence[str], None] = None,
                 return_datasamples: bool = False,
                 batch_size: Optional[int] = None,
                 **kwargs) -> Union[RefSegResult, List[RefSegResult], list]:
        """Segment what each expression refers to.

        Args:
            inputs: an image (path or uint8 array) with ``expressions``;
                or ``dict(img=image, text=expression(s))`` or a list of
                them, without ``expressions``.
            expressions: one expression or a list of them.
            return_datasamples (bool): the ``SegDataSample`` list (per
                input) instead of :class:`RefSegResult`.
            batch_size (int, optional): pairs per forward pass (defaults to
                the inferencer's).
            **kwargs: see the class docstring.

        Returns:
            RefSegResult for one image (a list for a list of dicts).

        Raises:
            UserError: bad image, expressions (the index and the reason are
                named), ``output_size``, ``threshold`` or ``out_file``;
                all but the image are checked before any work.
        """
        pre_kw, fwd_kw, vis_kw, post_kw = self._dispatch_kwargs(**kwargs)
        # fail before any work; forward gets the resolved values
        fwd_kw.update(self._test_cfg_overrides(**fwd_kw))
        single = expressions is not None or isinstance(inputs, dict)
        items = self._inputs_to_list(inputs, expressions)
        if vis_kw.get('out_file') is not None:  # every file to be written
            for path in output_paths(vis_kw['out_file'], len(items)):
                check_output_file(
                    path, IMAGE_EXTENSIONS, what='out_file',
                    inputs=self._input_paths(inputs, expressions))
        self._check_tokens(items)
        batches = self.preprocess(
            items, batch_size=batch_size or self.batch_size, **pre_kw)
        if self.show_progress:
            from rich.progress import track
            batches = track(batches, description='Inference')
        preds: list = []
        for data in batches:
            preds.extend(self.forward(data, **fwd_kw))
        threshold = fwd_kw.get('threshold')
        if threshold is None:
            threshold = model_test_cfg(self.model).get('threshold', 0.5)
        results, start = [], 0
        for item in items:
            n = len(item['texts'])
            results.append(RefSegResult.from_samples(
                item['texts'], preds[start:start + n], item['image'],
                threshold, item['img_path']))
            start += n
        visualization = self.visualize(items, results, **vis_kw)
        out = self.postprocess(results, visualization, return_datasamples,
                               **post_kw)
        return out[0] if single else out

    @staticmethod
    def _input_paths(inputs, expressions=None) -> List[str]:
        """The image paths among ``inputs`` (an output must not be one)."""
        if expressions is not None or isinstance(inputs, dict):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)):
            return []
        images = [x.get('img') if isinstance(x, dict) else x for x in inputs]
        return [str(x) for x in images if isinstance(x, (str, os.PathLike))]

    def _check_tokens(self, items: List[dict]) -> None:
        """Tokenise every expression once before any image is loaded: an
        expression whose tokens are all ``[UNK]`` / special is refused here,
        named by its index, not after the forward passes of the others."""
        tokenize = [t for t in self.pipeline.transforms
                    if type(t).__name__ == 'TokenizeText']
        if not tokenize:
            return
        for item in items:
            for i, text in enumerate(item['texts']):
                try:
                    tokenize[0](dict(text=text))
                except InvalidInputError as err:
                    raise ExpressionError(f'expression {i}: {err}') from err

    def _inputs_to_list(self, inputs, expressions=None) -> List[dict]:
        """Inputs as ``[dict(img=image, texts=[str, ...])]``, checked.

        Raises:
            ExpressionError (TypeError / ValueError): no expressions, or bad
                ones (see :func:`check_expressions`).
        """
        if expressions is not None:
            if isinstance(inputs, (dict, list, tuple)):
                raise ExpressionError(
                    'expressions go with one image (a path or an array); '
                    'give several images as dict(img=..., text=...) items')
            return [dict(img=inputs, texts=check_expressions(expressions))]
        if isinstance(inputs, dict):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)) or not inputs or not all(
                isinstance(x, dict) and 'img' in x and 'text' in x
                for x in inputs):
            raise ExpressionError(
                'call inferencer(image, expressions), or give '
                'dict(img=image, text=expression(s)) or a list of them')
        return [dict(img=x['img'], texts=check_expressions(x['text']))
                for x in inputs]

    def preprocess(self, inputs: List[dict], batch_size: int = 1,
                   channel_order: str = 'bgr') -> Iterator[dict]:
        """Pipeline outputs of the (image, expression) pairs, collated in
        chunks of ``batch_size``.

        Each image is loaded once by the pipeline's loader (its first
        transform); the rest of the pipeline runs once per expression. The
        decoded image (RGB) and its path are stored in the item
        (``image``, ``img_path``).

        Args:
            inputs: from :meth:`_inputs_to_list`.
            batch_size (int): pairs per chunk.
            channel_order (str): ``'bgr'`` or ``'rgb'``, of array images.

        Yields:
            dict: ``inputs`` (list of (3, h, w) tensors) and
            ``data_samples`` (list of SegDataSample).
        """
        if channel_order not in ('bgr', 'rgb'):
            raise InvalidInputError(
                f'channel_order must be "bgr" or "rgb", got '
                f'{channel_order!r}')
        loader = self.pipeline.transforms[0]
        rest = Compose(self.pipeline.transforms[1:])

        def pairs():
            for item in inputs:
                img = item['img']
                if channel_order == 'rgb' and isinstance(img, np.ndarray) \
                        and img.ndim == 3 and img.shape[2] in (3, 4):
                    img = img[..., [2, 1, 0, 3][:img.shape[2]]]
                loaded = loader(dict(img=img))
                item['image'] = np.ascontiguousarray(
                    loaded['img'][..., ::-1]).astype(np.uint8)
                item['img_path'] = loaded.get('img_path')
                for text in item['texts']:
                    yield rest(dict(loaded, text=text))

        yield from map(self.collate_fn,
                       self._get_chunk_data(pairs(), batch_size))

    def _test_cfg_overrides(self, threshold: Optional[float] = None,
                            output_size: Optional[str] = None) -> dict:
        """The ``test_cfg`` entries of a call (see :func:`call_test_cfg`)."""
        return call_test_cfg(self.model_output_size, threshold, output_size)

    @torch.no_grad()
    def forward(self, inputs: dict, threshold: Optional[float] = None,
                output_size: Optional[str] = None) -> list:
        """``model.test_step`` with the call's ``test_cfg``.

        Args:
            inputs (dict): a collated chunk from :meth:`preprocess`.
            threshold (float, optional): ``test_cfg.threshold`` for this
                chunk (the model's own otherwise).
            output_size (str, optional): ``'original'`` (default) or
                ``'input'``, see :data:`OUTPUT_SIZES`.

        Returns:
            list[SegDataSample]: ``seg_logits`` (probabilities) and
            ``pred_sem_seg``, at the size the ``test_cfg`` gives.
        """
        with override_test_cfg(
                self.model, self._test_cfg_overrides(threshold, output_size)):
            return self.model.test_step(inputs)

    def visualize(self, inputs: List[dict], preds: List[RefSegResult],
                  out_file: Optional[str] = None, show: bool = False,
                  alpha: float = 0.5) -> Optional[List[np.ndarray]]:
        """Draw each result's masks on its image with a legend (an
        expression predicted to refer to nothing is listed as
        ``<expression> (no target)``).

        The image is resized to the masks when they are not at its size
        (``output_size='input'``). Several results with one ``out_file``
        are written as ``<name>_<i><ext>``, each atomically (a failure
        leaves no half-written file).

        Returns:
            list[np.ndarray] or None: (H, W, 3) uint8 RGB drawings, None if
            neither ``out_file`` nor ``show``.
        """
        if out_file is None and not show:
            return None
        drawings = []
        paths = output_paths(out_file, len(preds)) if out_file is not None \
            else [None] * len(preds)
        for path, result in zip(paths, preds):
            drawing = self.visualizer.draw_expression_masks(
                result.image_at_mask_size(), result.masks,
                result.expressions, alpha=alpha, show=show,
                no_target=result.no_target)
            if path is not None:
                save_image(drawing, path)
            drawings.append(drawing)
        return drawings

    def postprocess(self, preds: List[RefSegResult],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False) -> list:
        """The results (with their drawing), or their data samples.

        Returns:
            list: per input, a :class:`RefSegResult` (``visualization``
            set when drawn) or, with ``return_datasamples``, its list of
            ``SegDataSample``.
        """
        if visualization is not None:
            for result, drawing in zip(preds, visualization):
                result.visualization = drawing
        if return_datasamples:
            return [result.data_samples for result in preds]
        return list(preds)


def inference_model(model: torch.nn.Module,
                    image: ImageInput,
                    expressions: Union[str, Sequence[str]],
                    threshold: Optional[float] = None,
                    output_size: Optional[str] = 'original',
                    batch_size: int = 8,
                    pipeline: Optional[Compose] = None,
                    channel_order: str = 'bgr') -> RefSegResult:
    """One image and N expressions through a built model.

    A :class:`MagNetInferencer` on ``model`` (it stays on its device; its
    ``test_cfg`` is set for the call only). See the inferencer for the
    arguments.

    Returns:
        RefSegResult: masks (N, H, W) bool, probs (N, H, W) float32.
    """
    inferencer = MagNetInferencer(model, batch_size=batch_size,
                                  pipeline=pipeline)
    return inferencer(image, expressions, threshold=threshold,
                      output_size=output_size, channel_order=channel_order)
