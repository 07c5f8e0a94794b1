"""The gradient-health plot reads what GradientHealthHook logged."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from ..conftest import load_tool

tool = load_tool('tools/analysis_tools/plot_gradient_health.py')


def _scalars(tmp_path, rows):
    folder = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    with open(folder / 'scalars.json', 'w') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return str(tmp_path / 'work')


def test_plot_from_a_work_dir(tmp_path):
    rows = [{'loss': 1.0, 'step': 1}]
    rows += [{'grad_norm/backbone.pwams.0': 0.1 * s, 'gate/backbone.gates.0':
              1e-3 * s, 'gate/text_encoder.fusions.0.gate': 0.0, 'step': s}
             for s in (50, 100, 150)]
    work = _scalars(tmp_path, rows)
    gates, norms = tool.read_series(tool.find_scalars(work))
    assert [s for s, _ in gates['backbone.gates.0']] == [50, 100, 150]
    assert [v for _, v in gates['backbone.gates.0']] == pytest.approx(
        [0.05, 0.1, 0.15])
    assert list(norms) == ['backbone.pwams.0']
    out = str(tmp_path / 'plot.png')
    assert tool.main([work, '--out', out]) == 0
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[1] > img.shape[0]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        tool.find_scalars(str(tmp_path))
    work = _scalars(tmp_path, [{'loss': 1.0, 'step': 1}])
    with pytest.raises(ValueError, match='GradientHealthHook'):
        tool.read_series(tool.find_scalars(work))
    assert osp.isdir(work)
