# RefCOCO (UNC splits): COCO train2014 images + refs(unc).p + instances.json.
# Official MagNet/LAVT protocol: image resized to 480x480 (aspect ratio not
# kept, PIL bilinear), mask resized with nearest, BERT tokens (20 slots);
# evaluation scores every sentence against the *resized* ground truth.
# RefCOCO+ / RefCOCOg inherit this file and change only the annotation set
# (``dataset``, ``split_by``) and the test splits; gRefCOCO and the generated
# datasets rebuild its pipelines, replacing the transforms they change.

dataset_type = 'RefCOCODataset'
data_root = 'data/refer'  # holds images/mscoco/images/train2014 and refcoco/
img_scale = (480, 480)
tokenizer = 'bert-base-uncased'  # hub name or local folder
max_tokens = 20

# 'kind': the expression kind of the generated dataset's sentences (packed
# only when present; RefCOCO has none), see RefSegMetric(group_keys=...)
meta_keys = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
             'text', 'input_ids', 'attention_mask', 'ref_id', 'sent_id',
             'image_id', 'split_tag', 'kind')
train_pipeline = [
    # PIL decode without EXIF rotation == the official PIL .convert('RGB');
    # LoadReferImageFromFile = mmcv's LoadImageFromFile with the official
    # rule for 16-bit / LA files and errors naming the file (also the
    # inference API's decoder)
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadReferringMask'),
    dict(type='SampleSentence'),
    dict(type='TokenizeText', tokenizer=tokenizer, max_length=max_tokens),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
# the same without sentence sampling: every sentence of a ref is an item
test_pipeline = [t for t in train_pipeline if t['type'] != 'SampleSentence']


# a function, not a dict: mmengine leaves functions out of the config
def _split(split, test_mode, pipeline):
    return dict(type=dataset_type, data_root=data_root, dataset='refcoco',
                split_by='unc', split=split, test_mode=test_mode,
                pipeline=pipeline)


train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=_split('train', False, train_pipeline))
val_dataloader = dict(
    train_dataloader,
    batch_size=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_split('val', True, test_pipeline))
# val + testA + testB in one tools/test.py run: metrics come back per split
# as '<dataset>_<split_by>_<split>/oIoU', ...
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            _split(s, True, test_pipeline) for s in ('val', 'testA', 'testB')
        ]))
val_evaluator = dict(type='RefSegMetric')
test_evaluator = val_evaluator
