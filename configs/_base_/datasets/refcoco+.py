# RefCOCO+ (UNC splits): no absolute location words in the expressions.
# RefCOCO's settings and splits (val, testA, testB), other annotations.
_base_ = './refcoco.py'

train_dataloader = dict(dataset=dict(dataset='refcoco+'))
val_dataloader = dict(dataset=dict(dataset='refcoco+'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(split, dataset='refcoco+')
    for split in _base_.test_dataloader.dataset.datasets
]))
