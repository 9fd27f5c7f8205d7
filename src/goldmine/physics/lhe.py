"""Les Houches Event files: written by the built-in process, read (with pylhe) into weighted events.

The reweighting information follows the Les Houches standard of generators' reweighting
(MadGraph's `reweight` module writes the same): the header declares one weight per benchmark in
``<initrwgt><weightgroup><weight id="...">...</weight></weightgroup></initrwgt>``, and every event
carries ``<rwgt><wgt id="...">w</wgt>...</rwgt>``. The text of a ``<weight>`` declaration may name
the benchmark's parameters as ``name=value`` pairs (goldmine writes them so); otherwise the reader
is given them.

Observables are named expressions over the final-state particles (status 1, in file order), each
a `FourMomenta` of all events at once: ``{"m_ll": "(p[0] + p[1]).m", "pt_1": "p[0].pt"}``, or
functions of that list. Smearing functions and cuts act on the observables.

References:
    Alwall et al., "A standard format for Les Houches Event Files", Comput. Phys. Commun. 176
    (2007) 300, https://arxiv.org/abs/hep-ph/0609017; Butterworth et al., "Les Houches 2013:
    physics at TeV colliders: standard model working group report", https://arxiv.org/abs/1405.1067
    (the reweighting blocks, LHE version 3.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..simulators.base import DTYPE
from .kinematics import FourMomenta, collins_soper, delta_phi

SQRT_S = 13_000.0  # GeV, the collider energy of the files the built-in process writes

#: names an observable expression may use besides p (the final-state particles)
EXPRESSION_NAMES = {"math": math, "torch": torch, "delta_phi": delta_phi, "collins_soper": collins_soper,
                    "abs": abs, "min": min, "max": max}


def evaluate_expression(label: str, expression, variables: dict, n: int, argument=None) -> torch.Tensor:
    """One number per event (n,) float64 from a user's expression: a string evaluated over `variables` and
    EXPRESSION_NAMES (no builtins), or a function called with `argument` (`variables` when None).

    Raises:
        ValueError: the expression fails (named by `label`, with the error), or gives neither one value nor n.
    """
    try:
        value = expression(variables if argument is None else argument) if callable(expression) else \
            eval(expression, {"__builtins__": {}}, {**EXPRESSION_NAMES, **variables})  # noqa: S307
    except Exception as error:  # the user's expression: name it with the error
        raise ValueError(f"{label} = {expression!r} cannot be evaluated: {error}") from error
    out = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=DTYPE).reshape(-1)
    if out.shape[0] not in (1, n):
        raise ValueError(f"{label} = {expression!r} gives {out.shape[0]} values for {n} events: one per event.")
    return out.expand(n).clone()


def _pylhe():
    try:
        import pylhe
    except ImportError as error:
        raise ImportError("reading LHE files needs pylhe: pip install 'goldmine[physics]'") from error
    return pylhe


def write_lhe(path, parton: Tensor, weights: Tensor, benchmarks: Tensor, parameter_names: Sequence[str] = ("c1", "c2"),
              weight_ids: Sequence[str] | None = None) -> Path:
    """Writes events of the built-in process (q q̄ → ℓ⁻ℓ⁺ at leading order) as a Les Houches file.

    Arguments:
        path: the file to write.
        parton: (N, 3) the events' (m [TeV], cos θ*, y), as `EFTProcess.weighted_events` gives them.
        weights: (N, B) the events' weights at the benchmarks.
        benchmarks: (B, d) the benchmark points, declared in the header.
        parameter_names: the d parameters' names.
        weight_ids: the B weights' ids; "b0", "b1", ... by default.

    Returns:
        the path written. Momenta are in GeV; XWGTUP is the weight at the first benchmark.
    """
    parton = torch.as_tensor(parton, dtype=DTYPE)
    weights = torch.as_tensor(weights, dtype=DTYPE)
    benchmarks = torch.as_tensor(benchmarks, dtype=DTYPE).reshape(weights.shape[1], -1)
    ids = [f"b{b}" for b in range(weights.shape[1])] if weight_ids is None else list(weight_ids)
    m, c, y = parton[:, 0] * 1000.0, parton[:, 1], parton[:, 2]
    pair = FourMomenta(m * torch.cosh(y), torch.zeros_like(m), torch.zeros_like(m), m * torch.sinh(y))
    sin = torch.sqrt((1.0 - c**2).clamp(min=0.0))
    lepton = FourMomenta(m / 2, m / 2 * sin, torch.zeros_like(m), m / 2 * c).boosted(pair)
    anti = pair - lepton
    x1, x2 = m / SQRT_S * torch.exp(y), m / SQRT_S * torch.exp(-y)
    lines = ['<LesHouchesEvents version="3.0">', "<header>", "<initrwgt>",
             '<weightgroup name="goldmine benchmarks" combine="none">']
    for wid, point in zip(ids, benchmarks.tolist()):
        lines.append(f'<weight id="{wid}"> ' + " ".join(f"{n}={v:.17g}" for n, v in zip(parameter_names, point))
                     + " </weight>")
    sigma = weights.sum(0)
    lines += ["</weightgroup>", "</initrwgt>", "</header>", "<init>",
              f"2212 2212 {SQRT_S / 2:.6e} {SQRT_S / 2:.6e} 0 0 0 0 3 1",
              f"{float(sigma[0]):.10e} 0.0000000000e+00 1.0000000000e+00 1", "</init>"]

    def particle(pid, status, m1, m2, col1, col2, px, py, pz, e):
        return (f" {pid:d} {status:d} {m1:d} {m2:d} {col1:d} {col2:d} {px:.17e} {py:.17e} {pz:.17e} {e:.17e} "
                f"0.0000000000e+00 0.0000e+00 9.0000e+00")

    cols = [t.tolist() for t in (x1, x2, lepton.e, lepton.px, lepton.py, lepton.pz, anti.e, anti.px, anti.py,
                                  anti.pz, m)]
    w_rows = weights.tolist()
    for i in range(parton.shape[0]):
        a, b, le, lx, ly, lz, ae, ax, ay, az, mi = (col[i] for col in cols)
        ea, eb = a * SQRT_S / 2, b * SQRT_S / 2
        lines += ["<event>", f" 4 1 {w_rows[i][0]:.17e} {mi:.8e} 7.54677100e-03 1.18000000e-01",
                  particle(2, -1, 0, 0, 501, 0, 0.0, 0.0, ea, ea),
                  particle(-2, -1, 0, 0, 0, 501, 0.0, 0.0, -eb, eb),
                  particle(11, 1, 1, 2, 0, 0, lx, ly, lz, le),
                  particle(-11, 1, 1, 2, 0, 0, ax, ay, az, ae),
                  "<rwgt>"] + [f'<wgt id="{wid}"> {w:.17e} </wgt>' for wid, w in zip(ids, w_rows[i])] + \
                 ["</rwgt>", "</event>"]
    lines.append("</LesHouchesEvents>")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class LHEEvents:
    """Events read from a Les Houches file.

    Attributes:
        x: (N, k) the observables of the events that pass the cuts.
        weights: (N, B) their weights at the requested benchmarks.
        benchmarks: (B, d) the benchmark points; weight_ids: their ids in the file.
        observables: the k observables' names.
        parameter_names: the d parameters' names.
        passed: (N_file,) which events of the file passed the cuts.
    """

    x: Tensor
    weights: Tensor
    benchmarks: Tensor
    weight_ids: tuple
    observables: tuple
    parameter_names: tuple
    passed: Tensor


def declared_weights(path) -> dict[str, str]:
    """The reweighting weights a file's header declares: id → the text of the declaration."""
    pylhe = _pylhe()
    lhe = pylhe.LHEFile.fromfile(str(path), generator=True)
    found = {}
    initrwgt = getattr(lhe.header, "initrwgt", None) or {}
    groups = getattr(initrwgt, "entries", None)
    if groups is None:  # older pylhe: a mapping of groups
        groups = initrwgt.values() if isinstance(initrwgt, Mapping) else initrwgt
    for group in groups:
        weights = group.weights if hasattr(group, "weights") else group.get("weights", {})
        for wid, weight in (weights.items() if isinstance(weights, Mapping) else ((w.id, w) for w in weights)):
            found[str(wid)] = str(getattr(weight, "name", "") or "").strip()
    return found


def _parse_point(text: str, names: Sequence[str]) -> list[float] | None:
    pairs = dict(part.split("=", 1) for part in text.split() if "=" in part)
    try:
        return [float(pairs[n]) for n in names]
    except (KeyError, ValueError):
        return None


def read_lhe(path, observables: Mapping[str, str | Callable], benchmarks: Mapping[str, Sequence[float]] | Sequence[str],
             parameter_names: Sequence[str] = ("c1", "c2"), smearing: Mapping[str, Callable] | None = None,
             cuts: Sequence[str | Callable] = (), seed: int = 0) -> LHEEvents:
    """Reads a Les Houches file into observables and benchmark weights.

    Arguments:
        path: the .lhe file (pylhe also reads .lhe.gz).
        observables: name → an expression over ``p``, the final-state particles (a list of
            `FourMomenta`, one entry per event), e.g. ``"(p[0] + p[1]).m"``, or a function of ``p``.
        benchmarks: the reweighting weights to read: a list of their ids, whose points are parsed
            from the header's ``name=value`` text, or a mapping id → the benchmark point.
        parameter_names: the parameters' names (the header's ``name=value`` pairs).
        smearing: name → a function (values (N,), generator) → smeared values, applied before the cuts.
        cuts: expressions over the observables' names (``"m_ll > 300"``) or functions of the dict of
            observables returning (N,) bool; an event is kept when it passes all.
        seed: the seed of the smearing's generator.

    Raises:
        ValueError: a requested weight the file does not have (naming those it has), a benchmark
            point that cannot be read, events with different numbers of final-state particles, or an
            observable that cannot be evaluated.
    """
    pylhe = _pylhe()
    declared = declared_weights(path)
    ids = list(benchmarks.keys()) if isinstance(benchmarks, Mapping) else [str(b) for b in benchmarks]
    missing = [wid for wid in ids if wid not in declared]
    if missing:
        raise ValueError(
            f"{path} has no reweighting weight {', '.join(map(repr, missing))} (it declares "
            f"{sorted(declared) or 'no reweighting block at all'}): rerun the generator's reweighting with these "
            "benchmarks, or ask only for the weights the file has.")
    points = []
    for wid in ids:
        point = list(benchmarks[wid]) if isinstance(benchmarks, Mapping) else _parse_point(declared[wid], parameter_names)
        if point is None:
            raise ValueError(f"the header's declaration of weight {wid!r} ({declared[wid]!r}) does not name "
                             f"{list(parameter_names)}: pass benchmarks as a mapping id → point.")
        points.append(point)
    columns: dict[str, list] = {k: [] for k in ("e", "px", "py", "pz")}
    weights, sizes = [], set()
    for event in pylhe.LHEFile.fromfile(str(path), generator=True).events:
        final = [q for q in event.particles if int(q.status) == 1]
        sizes.add(len(final))
        for k in columns:
            columns[k].append([float(getattr(q, k)) for q in final])
        ew = event.weights
        absent = [wid for wid in ids if wid not in ew]
        if absent:
            raise ValueError(f"an event of {path} has no weight {absent[0]!r} although the header declares it: "
                             "the file is damaged; regenerate it.")
        weights.append([float(ew[wid]) for wid in ids])
    if not weights:
        raise ValueError(f"{path} holds no events.")
    if len(sizes) > 1:
        raise ValueError(f"the events of {path} have different numbers of final-state particles {sorted(sizes)}: "
                         "observables by position need one process; split the file by process.")
    arrays = {k: torch.tensor(v, dtype=DTYPE) for k, v in columns.items()}
    p = [FourMomenta(arrays["e"][:, j], arrays["px"][:, j], arrays["py"][:, j], arrays["pz"][:, j])
         for j in range(arrays["e"].shape[1])]
    values = {}
    for name, expression in observables.items():
        values[name] = evaluate_expression(f"observable {name!r}", expression, {"p": p}, len(weights), argument=p)
    g = torch.Generator().manual_seed(seed)
    for name, smear in (smearing or {}).items():
        if name not in values:
            raise ValueError(f"smearing names {name!r}, which is no observable; observables: {list(values)}.")
        values[name] = torch.as_tensor(smear(values[name], g), dtype=DTYPE)
    passed = torch.ones(len(weights), dtype=torch.bool)
    for cut in cuts:
        keep = cut(values) if callable(cut) else evaluate_expression(f"cut {cut!r}", cut, values, len(weights)) != 0
        passed &= torch.as_tensor(keep, dtype=torch.bool).reshape(-1)
    x = torch.stack([values[n] for n in observables], dim=-1)
    return LHEEvents(x[passed], torch.tensor(weights, dtype=DTYPE)[passed], torch.tensor(points, dtype=DTYPE),
                     tuple(ids), tuple(observables), tuple(parameter_names), passed)


def lhe_source(events: LHEEvents, exponents, prior, reference, name: str = "lhe_events", nuisances=()):
    """The `WeightedEvents` of events read from a file (`read_lhe`, or `goldmine.physics.root.read_root`),
    morphed with the monomials `exponents` (C, d) between the file's benchmarks (at least C of them, not
    degenerate), with the `Nuisance`s given (one weight ratio per event that passed the cuts)."""
    from .events import WeightedEvents
    from .morphing import Morphing

    return WeightedEvents(events.x, events.weights, Morphing(exponents, events.benchmarks), prior, reference, name=name,
                          nuisances=nuisances)
