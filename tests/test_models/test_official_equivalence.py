"""Acceptance test: the converted official checkpoint reproduces the
official implementation's outputs.

The fixture directory comes from ``MAGNET_OFFICIAL_FIXTURE`` (default
``tests/data/official_small``, made by running the official code, see its
README); any directory with the same layout
(``config.json``, ``official_tiny.pth``, ``inputs.pt``, ``outputs.pt``) works.
Tensors the fixture lacks are skipped, not failed.
"""
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.magnet.converters.parity import (FINAL_TOLERANCE,
                                               build_from_fixture,
                                               compare_with_fixture,
                                               trace_official_outputs)

REQUIRED = ('pred_masks', 'prob', 's1', 's2', 's3', 's4', 'mask_features')


@pytest.fixture(scope='module')
def official(official_fixture_dir):
    d = official_fixture_dir
    model = build_from_fixture(d)
    inputs = torch.load(osp.join(d, 'inputs.pt'), weights_only=True)
    outputs = torch.load(osp.join(d, 'outputs.pt'), weights_only=True)
    return model, inputs, outputs, d


def test_outputs_match_official(official):
    model, inputs, outputs, fixture_dir = official
    rows = compare_with_fixture(fixture_dir, model)
    failures = [f'{n}: {d:.3g} > {t}' for n, _, d, t in rows if d > t]
    assert not failures, failures
    compared = {r[0] for r in rows}
    assert not [n for n in REQUIRED if n in outputs and n not in compared]
    assert len(compared) >= len(REQUIRED)
    if 'mask' in outputs and 'prob' in outputs:
        ours = trace_official_outputs(model, inputs)
        decided = (outputs['prob'] - 0.5).abs() > FINAL_TOLERANCE['prob']
        assert torch.equal(ours['mask'][decided], outputs['mask'][decided])


def test_mmseg_predict_path_matches_official(official):
    """uint8 image -> data preprocessor -> ``predict`` gives the official
    probability map."""
    model, inputs, outputs, _ = official
    if 'image_uint8' not in inputs or 'prob' not in outputs:
        pytest.skip('fixture has no uint8 image / prob')
    B, _, H, W = inputs['image_uint8'].shape
    samples = []
    for b in range(B):
        meta = dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W),
                    input_ids=inputs['input_ids'][b].numpy(),
                    attention_mask=inputs['attention_mask'][b].numpy())
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.zeros(1, H, W).long())
        samples.append(sample)
    # the preprocessor takes BGR uint8 (as mmcv loads images) -> flip RGB
    imgs = [inputs['image_uint8'][b].flip(0) for b in range(B)]
    data = model.data_preprocessor(dict(inputs=imgs, data_samples=samples))
    torch.testing.assert_close(data['inputs'], inputs['image'], atol=2e-6,
                               rtol=0)
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    prob = torch.stack([r.seg_logits.data for r in results])
    assert prob.shape == outputs['prob'].shape
    assert (prob - outputs['prob']).abs().max() <= FINAL_TOLERANCE['prob']
    pred = torch.stack([r.pred_sem_seg.data for r in results])
    assert torch.equal(pred.bool(), prob > 0.5)
