# RefCOCOg, UMD partition (val / test). RefCOCO's settings, other
# annotations and test splits.
_base_ = './refcoco.py'

train_dataloader = dict(dataset=dict(dataset='refcocog', split_by='umd'))
val_dataloader = dict(dataset=dict(dataset='refcocog', split_by='umd'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(_base_.val_dataloader.dataset, dataset='refcocog', split_by='umd',
         split=split) for split in ('val', 'test')
]))
