# RefCOCOg, Google partition (val only). RefCOCO's settings, other
# annotations and test splits.
_base_ = './refcoco.py'

train_dataloader = dict(dataset=dict(dataset='refcocog', split_by='google'))
val_dataloader = dict(dataset=dict(dataset='refcocog', split_by='google'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(_base_.val_dataloader.dataset, dataset='refcocog',
         split_by='google')
]))
