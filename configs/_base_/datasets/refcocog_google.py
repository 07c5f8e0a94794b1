# RefCOCOg, Google partition (val only).
_base_ = './refcoco.py'

_ann = dict(dataset='refcocog', split_by='google')
train_dataloader = dict(dataset=_ann)
val_dataloader = dict(dataset=_ann)
_test = dict(
    type='RefCOCODataset',
    data_root={{_base_.data_root}},
    test_mode=True,
    pipeline={{_base_.test_pipeline}},
    **_ann)
test_dataloader = dict(dataset=dict(datasets=[
    dict(_test, split='val')
]))
