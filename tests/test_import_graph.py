"""The package's import graph: no cycles, layers in one direction."""
import os.path as osp

from .conftest import REPO_ROOT, load_tool

graph = load_tool('.dev_scripts/check_import_graph.py')


def test_package_has_no_cycles_and_respects_layers():
    problems = graph.check(osp.join(REPO_ROOT, 'projects', 'magnet'))
    assert problems == []


def test_checker_finds_a_cycle_and_an_upward_import(tmp_path):
    pkg = tmp_path / 'magnet'
    for sub in ('models', 'converters'):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / '__init__.py').write_text('')
    (pkg / '__init__.py').write_text('')
    # hidden in a function: still a dependency
    (pkg / 'models' / 'a.py').write_text(
        'def f():\n    from ..converters.b import g\n')
    (pkg / 'converters' / 'b.py').write_text('from ..models.a import f\n')
    problems = graph.check(str(pkg))
    assert any('import cycle' in p and 'models.a' in p and 'converters.b' in p
               for p in problems)
    assert any('models may not import converters' in p for p in problems)
