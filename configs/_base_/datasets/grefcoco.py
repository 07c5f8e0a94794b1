# gRefCOCO (GRES): COCO train2014 images + grefs(unc).json + instances.json.
# Expressions name one object, several, or none (ann_id == [-1]). RefCOCO's
# 480x480 pipeline with the union-mask loader (LoadGRefMask: every referred
# non-crowd object OR-ed, empty for no-target) and 'no_target' packed into
# the data sample's metainfo for GRefSegMetric.

dataset_type = 'GRefCOCODataset'
data_root = 'data/refer'  # holds images/mscoco/images/train2014, grefcoco/
img_scale = (480, 480)
tokenizer = 'bert-base-uncased'  # hub name or local folder
max_tokens = 20

# RefCOCO's meta keys plus 'no_target' (the truth of GRefSegMetric) and
# 'ann_id' (the referred annotation ids, a list)
meta_keys = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
             'text', 'input_ids', 'attention_mask', 'ref_id', 'sent_id',
             'image_id', 'split_tag', 'kind', 'no_target', 'ann_id')
train_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadGRefMask'),
    dict(type='SampleSentence'),
    dict(type='TokenizeText', tokenizer=tokenizer, max_length=max_tokens),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadGRefMask'),
    dict(type='TokenizeText', tokenizer=tokenizer, max_length=max_tokens),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]


# a function, not a dict: mmengine leaves functions out of the config
def _split(split, test_mode, pipeline):
    return dict(type=dataset_type, data_root=data_root, dataset='grefcoco',
                split_by='unc', split=split, test_mode=test_mode,
                pipeline=pipeline)


train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=_split('train', False, train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_split('val', True, test_pipeline))
# val + testA + testB in one tools/test.py run: metrics come back per split
# as 'grefcoco_unc_<split>/gIoU', ...
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            _split(s, True, test_pipeline) for s in ('val', 'testA', 'testB')
        ]))
val_evaluator = dict(type='GRefSegMetric')
test_evaluator = val_evaluator
