# Category segmentation of the generated dataset's *train* images (every
# object painted with its shape: 6 classes + background), for pre-training
# the vision side (configs/pretrain). Same images and instances.json as the
# referring dataset (configs/_base_/datasets/refsynth.py); only the images of
# the refs' train split are used.
dataset_type = 'ReferCategorySegDataset'
data_root = 'data/refsynth'
img_scale = (128, 128)
train_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadCategoryMap'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    # categories do not change under a horizontal flip (referring
    # expressions do: "left" / "right"; the referring configs never flip)
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs'),
]
# labels at the original size (mmseg's test pipelines): loaded after Resize
test_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadCategoryMap'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, dataset='refsynth',
                 split_by='unc', split='train', pipeline=train_pipeline))
val_dataloader = dict(
    train_dataloader,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(train_dataloader['dataset'], split='val', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
