"""ROOT files (with uproot): a TTree's observable and weight branches read into weighted events.

Detector-level output (after a shower and a detector simulation) usually comes as a ROOT file whose
TTree holds one entry per event: branches of the reconstructed observables, and one weight branch
per benchmark point θ_b (what a generator's reweighting writes, carried through the simulation),
possibly with weight branches of systematic variations. `read_root` reads the branches it is told
into the same `LHEEvents` record that `read_lhe` gives, and `goldmine.physics.lhe_source` turns
either into a `WeightedEvents` (morphing between the benchmarks, nuisances from the variations).

Observables are named expressions over the tree's branches (a branch name alone is one), one
number per event; cuts are expressions over the observables' names, as in `read_lhe`.

References:
    Pivarski et al., "uproot", https://doi.org/10.5281/zenodo.4340632; Brun, Rademakers, "ROOT: an
    object oriented data analysis framework", Nucl. Instrum. Meth. A 389 (1997) 81.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ..simulators.base import DTYPE
from .lhe import EXPRESSION_NAMES, LHEEvents, evaluate_expression
from .nuisance import Nuisance


#: the classes of ROOT objects read as event tables: TTrees, and RNTuples (which uproot 5.7 writes by default)
TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def _uproot():
    try:
        import uproot
    except ImportError as error:
        raise ImportError("reading ROOT files needs uproot: pip install 'goldmine[physics]'") from error
    return uproot


def _names_in(expression: str) -> set[str]:
    """The bare names an expression reads (the branches it needs)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"{expression!r} is not an expression: {error.msg}.") from error
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - set(EXPRESSION_NAMES)


def read_root(path, tree: str, observables: Sequence[str] | Mapping[str, str | Callable],
              benchmarks: Mapping[str, Sequence[float]], parameter_names: Sequence[str] = ("c1", "c2"),
              cuts: Sequence[str | Callable] = (), variations: Mapping[str, tuple[str, str]] | None = None
              ) -> tuple[LHEEvents, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Reads observables and benchmark weights from a TTree.

    Arguments:
        path: the .root file.
        tree: the TTree's name (``"events"``, or ``"dir/events"`` inside a directory); an RNTuple is
            read the same way.
        observables: branch names, or name → an expression over the branches (``"ptl1 / 1000"``) or a
            function of the dict of branch arrays; one number per event.
        benchmarks: weight branch → the benchmark point θ_b it holds the weights at (d values).
        parameter_names: the d parameters' names.
        cuts: expressions over the observables' names (``"m_ll > 0.3"``) or functions of the dict of
            observables returning (N,) bool; an event is kept when it passes all.
        variations: nuisance name → (up branch, down branch), the event weights at its ±1σ variations
            (at the first benchmark); they become the weight ratios of a `Nuisance`.

    Returns:
        the events (`LHEEvents`: x (N, k), weights (N, B), benchmarks (B, d), ...) of the entries that
        pass the cuts, and name → (up, down) the ratios w_±/w_0 of those events for each variation.

    Raises:
        ValueError: a tree the file does not have, or branches the tree does not have (naming all the
            missing ones and those it has), a benchmark of the wrong length, weights that are not
            finite, or an observable that cannot be evaluated.
    """
    uproot = _uproot()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give the path of a ROOT file.")
    observables = {name: name for name in observables} if not isinstance(observables, Mapping) else dict(observables)
    variations = dict(variations or {})
    if not benchmarks:
        raise ValueError("give benchmarks= as a mapping weight branch → benchmark point.")
    ids = [str(b) for b in benchmarks]
    points = [list(map(float, benchmarks[b])) for b in benchmarks]
    bad = [b for b, p in zip(ids, points) if len(p) != len(parameter_names)]
    if bad:
        raise ValueError(f"benchmarks {bad} do not have {len(parameter_names)} values (one per parameter "
                         f"{list(parameter_names)}).")
    with uproot.open(path) as file:
        trees = [k.split(";")[0] for k, c in file.classnames().items() if c.startswith(TREE_CLASSES)]
        if tree not in trees:
            raise ValueError(f"{path} has no TTree {tree!r}; its trees: {trees or 'none'}.")
        t = file[tree]
        have = set(t.keys())
        needed = set(ids) | {b for pair in variations.values() for b in pair}
        for expression in observables.values():
            needed |= set() if callable(expression) else _names_in(expression)
        missing = sorted(needed - have)
        if missing:
            raise ValueError(f"the tree {tree!r} of {path} has no branch {', '.join(map(repr, missing))}; its "
                             f"branches: {sorted(have)}. Name existing branches in observables=, benchmarks= "
                             "and variations=.")
        wanted = sorted(have) if any(callable(e) for e in observables.values()) else sorted(needed)
        arrays = t.arrays(wanted, library="np")
    n = len(arrays[ids[0]])
    weights = torch.stack([evaluate_expression(f"weight branch {b!r}", b, arrays, n) for b in ids], -1)
    if not torch.isfinite(weights).all():
        raise ValueError(f"the weight branches of {path} hold NaN or infinite weights: drop those entries first.")
    values = {name: evaluate_expression(f"observable {name!r}", e, arrays, n) for name, e in observables.items()}
    passed = torch.ones(n, dtype=torch.bool)
    for cut in cuts:
        keep = cut(values) if callable(cut) else evaluate_expression(f"cut {cut!r}", cut, values, n) != 0
        passed &= torch.as_tensor(keep, dtype=torch.bool).reshape(-1)
    ratios = {}
    for name, (up, down) in variations.items():
        base = weights[passed, 0]
        ratios[name] = (evaluate_expression(f"variation {up!r}", up, arrays, n)[passed] / base,
                        evaluate_expression(f"variation {down!r}", down, arrays, n)[passed] / base)
    x = torch.stack([values[name] for name in observables], -1)
    events = LHEEvents(x[passed], weights[passed], torch.tensor(points, dtype=DTYPE), tuple(ids),
                       tuple(observables), tuple(parameter_names), passed)
    return events, ratios


def variation_nuisances(ratios: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> list[Nuisance]:
    """The `Nuisance`s (standard-normal constraints) of the weight ratios `read_root` returns."""
    return [Nuisance(name, up=up, down=down) for name, (up, down) in ratios.items()]
