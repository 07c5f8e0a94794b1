"""The restricted unpickler for REFER refs files."""
import io
import os
import pickle
from collections import OrderedDict

import pytest

from projects.magnet.datasets.refer_pickle import (
    PickleInfo,
    UnsafeReferPickleError,
    inspect_refer_pickle,
    load_refer_pickle,
)

from .utils import Py2Unicode, py2_pickle_dumps

# python 2: pickle.dumps([{'raw': 'red', 'sent': u'r\xe9d', 'id': 3,
#                          'big': 2**40}], 2)
PY2_PROTOCOL2 = (
    b'\x80\x02]q\x00}q\x01(U\x03rawq\x02U\x03redq\x03U\x04sentq\x04'
    b'X\x04\x00\x00\x00r\xc3\xa9dq\x05U\x02idq\x06K\x03U\x03bigq\x07'
    b'\x8a\x06\x00\x00\x00\x00\x00\x01ua.')


class _RunsCommand:
    """Pickles to ``os.system(cmd)``: loading it with pickle runs ``cmd``."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd, ))


def test_code_execution_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'refs(unc).p'
    payload = [dict(ref_id=1, split='train'), _RunsCommand(f'touch {marker}')]
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeReferPickleError) as e:
        load_refer_pickle(str(path))
    msg = str(e.value)
    assert str(path) in msg and 'system' in msg
    assert not marker.exists()
    # the payload really is dangerous with a plain unpickler
    pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize('data, global_name', [
    (b"cbuiltins\neval\n(S'1+1'\ntR.", 'builtins.eval'),
    (b"c__builtin__\neval\n(S'1+1'\ntR.", '__builtin__.eval'),
    (b"c__builtin__\nset\n((lp0\nI1\natR.", '__builtin__.set'),
    (pickle.dumps(os.getcwd, protocol=4), 'getcwd'),  # STACK_GLOBAL
])
def test_globals_are_refused(data, global_name):
    with pytest.raises(UnsafeReferPickleError, match=global_name):
        load_refer_pickle(io.BytesIO(data), source='evil.p')


def test_instances_of_classes_are_refused():
    data = pickle.dumps([OrderedDict(a=1), io.BytesIO(b'x')], protocol=2)
    with pytest.raises(UnsafeReferPickleError, match='_io.BytesIO'):
        load_refer_pickle(io.BytesIO(data))


def test_persistent_ids_are_refused():
    with pytest.raises(UnsafeReferPickleError, match='persistent'):
        load_refer_pickle(io.BytesIO(b'Pfoo\n.'))


def test_ordered_dict_is_allowed():
    data = OrderedDict([('b', 1), ('a', [1.5, None, True])])
    for protocol in (0, 2, 4):
        out = load_refer_pickle(io.BytesIO(pickle.dumps(data, protocol)))
        assert out == data and list(out) == ['b', 'a']


def test_py2_protocol0_pickle():
    # What python 2 writes for
    #   [{'raw': 'the red circle', 'sent_id': 7L, 'x': u'caf\xe9',
    #     'y': '\xe9', 'z': (1, 2.5)}]  with pickle.dump(..., 0)
    data = (b"(lp0\n(dp1\nS'raw'\np2\nS'the red circle'\np3\nsS'sent_id'\n"
            b"p4\nL7L\nsS'x'\np5\nVcaf\xe9\np6\nsS'y'\np7\nS'\\xe9'\np8\n"
            b"sS'z'\np9\n(I1\nF2.5\ntp10\nsa.")
    out = load_refer_pickle(io.BytesIO(data))
    assert out == [dict(raw='the red circle', sent_id=7, x='caf\xe9',
                        y='\xe9', z=(1, 2.5))]
    assert all(isinstance(k, str) for k in out[0])


def test_py2_protocol2_pickle():
    out = load_refer_pickle(io.BytesIO(PY2_PROTOCOL2))
    assert out == [dict(raw='red', sent='r\xe9d', id=3, big=2**40)]


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / 'refs(umd).p'
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2)[:-3])
    with pytest.raises(pickle.UnpicklingError, match=r'refs\(umd\)\.p'):
        load_refer_pickle(str(path))


def test_truncated_pickle_says_so(tmp_path):
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(pickle.dumps([dict(ref_id=1, split='val')] * 50,
                                  protocol=2)[:40])
    with pytest.raises(pickle.UnpicklingError,
                       match=r'refs\(unc\)\.p: not a valid REFER refs pickle'
                       ': the file ends too early \\(truncated'):
        load_refer_pickle(str(path))


def test_test_helper_writes_what_python2_writes():
    """tests/test_datasets/utils.py's Python-2 pickler reproduces the bytes
    Python 2 wrote in test_py2_protocol2_pickle (so the dataset tests that
    use it test real Python-2 files)."""
    data = py2_pickle_dumps([dict(raw='red', sent=Py2Unicode('r\xe9d'), id=3,
                                  big=2**40)])
    assert data == PY2_PROTOCOL2
    refs = [dict(split='train', raw='x' * 300, ids=list(range(1200)),
                 f=0.5, neg=-7, none=None, yes=True)] * 3
    assert load_refer_pickle(io.BytesIO(py2_pickle_dumps(refs))) == refs


def test_inspect_refer_pickle(tmp_path):
    py2 = tmp_path / 'py2.p'
    py2.write_bytes(PY2_PROTOCOL2)
    assert inspect_refer_pickle(str(py2)) == PickleInfo(2, True)
    py2_proto0 = tmp_path / 'py2_0.p'
    py2_proto0.write_bytes(b"(lp0\n(dp1\nS'raw'\np2\nS'red'\np3\nsa.")
    assert inspect_refer_pickle(str(py2_proto0)) == PickleInfo(0, True)
    py3 = tmp_path / 'py3.p'
    py3.write_bytes(pickle.dumps([dict(raw='red')], protocol=2))
    assert inspect_refer_pickle(str(py3)) == PickleInfo(2, False)
    junk = tmp_path / 'junk.p'
    junk.write_bytes(b'\x80\x04\xff\xff')
    assert inspect_refer_pickle(str(junk)) == PickleInfo(4, False)
