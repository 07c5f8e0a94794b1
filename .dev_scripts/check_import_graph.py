"""Import graph of the ``projects.magnet`` package: cycles and layering.

Reads every module with :mod:`ast` (nothing is imported or executed) and
collects the imports it makes, at module level and inside functions (an
import hidden in a function is still a dependency). An edge goes from a
module to the module it imports; ``from pkg import name`` goes to
``pkg.name`` when that is a module of the package, else to ``pkg``
(its ``__init__``). Edges from a package's ``__init__`` to its own
submodules are the package's re-exports and are kept.

Checks:
* no cycles (strongly connected components of more than one module);
* layering: every edge between the top-level sub-packages goes downwards in
  :data:`LAYERS` (a package may use the ones listed before it).

Usage:
    python .dev_scripts/check_import_graph.py [--root projects/magnet]
        [--print-edges]
Exit status 1 and one ``error:`` line per problem when a check fails.
"""
from __future__ import annotations

import argparse
import ast
import os
import os.path as osp
import sys
from typing import Dict, List, Set

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: Sub-packages of ``projects.magnet`` from the bottom up: each may import
#: those before it, never those after it.
LAYERS = ('utils', 'compat', 'datasets', 'models', 'evaluation',
          'visualization', 'engine', 'converters', 'deployment', 'apis')


def module_names(pkg_dir: str, pkg: str) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` under ``pkg_dir``."""
    out = {}
    for dirpath, _, files in os.walk(pkg_dir):
        rel = osp.relpath(dirpath, osp.dirname(pkg_dir))
        base = rel.replace(os.sep, '.')
        for f in files:
            if not f.endswith('.py'):
                continue
            name = base if f == '__init__.py' else f'{base}.{f[:-3]}'
            out[name] = osp.join(dirpath, f)
    return {k.replace(osp.basename(pkg_dir), pkg, 1) if not k.startswith(
        pkg) else k: v for k, v in out.items()}


def _resolve(importer: str, is_pkg: bool, level: int,
             module: str | None) -> str:
    parts = importer.split('.')
    if not is_pkg:
        parts = parts[:-1]
    if level > 1:
        parts = parts[:len(parts) - (level - 1)]
    base = '.'.join(parts)
    return f'{base}.{module}' if module else base


def import_edges(modules: Dict[str, str], pkg: str) -> Dict[str, Set[str]]:
    edges: Dict[str, Set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.endswith('__init__.py')
        tree = ast.parse(open(path, encoding='utf-8').read(), path)
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (_resolve(name, is_pkg, node.level, node.module)
                        if node.level else node.module or '')
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    targets.append(sub if sub in modules else base)
            for t in targets:
                while t and t not in modules and '.' in t:
                    t = t.rsplit('.', 1)[0]
                if t in modules and t != name and t.startswith(pkg):
                    edges[name].add(t)
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer_violations(edges: Dict[str, Set[str]], pkg: str) -> List[str]:
    def layer(mod: str):
        parts = mod.split('.')
        depth = len(pkg.split('.'))
        return parts[depth] if len(parts) > depth else None

    bad = []
    for src, dsts in sorted(edges.items()):
        a = layer(src)
        for dst in sorted(dsts):
            b = layer(dst)
            if a is None or b is None or a == b:
                continue
            if a not in LAYERS or b not in LAYERS:
                bad.append(f'{src} -> {dst}: {a if a not in LAYERS else b} '
                           f'is not in LAYERS')
            elif LAYERS.index(b) > LAYERS.index(a):
                bad.append(f'{src} -> {dst}: {a} may not import {b} '
                           f'(layers: {" < ".join(LAYERS)})')
    return bad


def check(root: str, pkg: str = 'projects.magnet') -> List[str]:
    modules = module_names(root, pkg)
    edges = import_edges(modules, pkg)
    problems = [f'import cycle: {" <-> ".join(c)}' for c in cycles(edges)]
    return problems + layer_violations(edges, pkg)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=osp.join(ROOT, 'projects',
                                                   'magnet'))
    parser.add_argument('--print-edges', action='store_true')
    args = parser.parse_args(argv)
    pkg = 'projects.magnet'
    if args.print_edges:
        edges = import_edges(module_names(args.root, pkg), pkg)
        for src in sorted(edges):
            for dst in sorted(edges[src]):
                print(f'{src} -> {dst}')
    problems = check(args.root, pkg)
    for p in problems:
        print(f'error: {p}')
    if not problems:
        print(f'{pkg}: no import cycles; layers {" < ".join(LAYERS)} '
              'respected')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
