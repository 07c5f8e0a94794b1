# gRefCOCO (GRES): COCO train2014 images + grefs(unc).json + instances.json.
# Expressions name one object, several, or none (ann_id == [-1]). RefCOCO's
# settings, 480x480 pipeline and splits (val, testA, testB) with the
# union-mask loader (LoadGRefMask: every referred non-crowd object OR-ed,
# empty for no-target), 'no_target' packed into the data sample's metainfo
# and GRefSegMetric. data_root (data/refer) holds grefcoco/ next to refcoco/.
_base_ = './refcoco.py'

dataset_type = 'GRefCOCODataset'

# RefCOCO's meta keys plus 'no_target' (the truth of GRefSegMetric) and
# 'ann_id' (the referred annotation ids, a list)
meta_keys = _base_.meta_keys + ('no_target', 'ann_id')
# RefCOCO's transforms; mmengine replaces lists, so the pipeline is rebuilt
train_pipeline = [
    dict(type='LoadGRefMask') if t['type'] == 'LoadReferringMask' else
    dict(t, meta_keys=meta_keys) if t['type'] == 'PackSegInputs' else t
    for t in _base_.train_pipeline
]
test_pipeline = [t for t in train_pipeline if t['type'] != 'SampleSentence']
train_dataloader = dict(dataset=dict(
    type=dataset_type, dataset='grefcoco', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, dataset='grefcoco', pipeline=test_pipeline))
# val + testA + testB in one tools/test.py run: metrics come back per split
# as 'grefcoco_unc_<split>/gIoU', ...
test_dataloader = dict(dataset=dict(datasets=[
    dict(split, type=dataset_type, dataset='grefcoco', pipeline=test_pipeline)
    for split in _base_.test_dataloader.dataset.datasets
]))
val_evaluator = dict(type='GRefSegMetric')
test_evaluator = val_evaluator
