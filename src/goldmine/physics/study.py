"""An EFT study from one TOML file: a Les Houches file in, limits with systematics out.

The file (examples/eft.toml explains every key) names

    [events]      the LHE file (relative to the study file), the reweighting weights to read, the
                  observables as expressions over the particles, cuts, the morphing's powers; with
                  `generate = N` the built-in process (`EFTProcess`) writes N events there first when
                  the file does not exist
    [parameters]  the coefficients' names, the box prior over them and the reference point
    [[nuisances]] each systematic: `normalisation = δ`, or `up` and `down`, expressions over the
                  observables giving the weight ratios w_±/w of every event
    [data]        the mined runs and their seed
    [train]       the ratio methods to train (with the estimators' defaults unless options are given)
    [limits]      the expected SM events L·σ(SM) (which fixes the luminosity), the grid over the
                  coefficients, the levels, the binned pyhf baseline's observables and bins, and
                  `toys = T` pseudo-experiments at the reference (0, the default, runs none)

and `run_eft_study(path)` (or `goldmine run STUDY.toml`, which recognises a study by its [events]
section) writes into the output folder (new, empty, or one a study wrote: goldmine's marker says
so, and any other folder is refused) the mined data, `limits.json` (the areas of
the expected (Asimov, at the reference) Wilks regions of the truth, every method, the rate alone and
the pyhf analysis, with the nuisances profiled and fixed) and `limits.png` (the 95% contours with
systematics). Every method profiles ν with the extended likelihood of `goldmine.physics.limits`; a
surrogate's on its shape terms tabulated at Chebyshev nodes in ν (`interpolated_profile`, as the toys; with toys,
the Asimov data's events join the toys' table, so that each surrogate tabulates its events once).

With `toys = T`, each likelihood with a shape model (the truth and every method) also gets T toys at
the reference, ν profiled (`pooled_toy_limits`): limits.json's "toys" holds their expected areas with
the ±1σ, ±2σ bands and the Neyman coverage of the Wilks regions at each level. A coverage that the
Wilks check's binomial rule (`goldmine.inference.wilks_check.under_covers`, one test per likelihood
and level) calls too low raises a warning that names the method, the level and the coverage.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import torch

from ..folders import claim
from ..simulators.base import DTYPE, box_prior
from .histfactory import histogram_limits
from .lhe import EXPRESSION_NAMES, declared_weights, lhe_source, read_lhe, write_lhe
from .limits import ExtendedLikelihood, asimov, profile, wilks_limits
from .morphing import choose_benchmarks, components
from .nuisance import Nuisance

SECTIONS = ("name", "output", "events", "parameters", "nuisances", "data", "train", "limits")


def _require(table: dict, key: str, where: str):
    if key not in table:
        raise ValueError(f"{where} needs {key!r} (see examples/eft.toml for every key).")
    return table[key]


def load_eft_study(path) -> dict:
    """The study file as a dict, checked for unknown sections and the keys every study needs.

    Raises:
        ValueError: an unknown section, or a required key missing, naming it.
    """
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; an EFT study has {list(SECTIONS)}.")
    events = _require(raw, "events", str(path))
    _require(events, "lhe", f"{path} [events]")
    _require(events, "observables", f"{path} [events]")
    params = _require(raw, "parameters", str(path))
    for key in ("names", "low", "high"):
        _require(params, key, f"{path} [parameters]")
    _require(_require(raw, "train", str(path)), "methods", f"{path} [train]")
    return raw


def _nuisances(specs: list, values: dict) -> list[Nuisance]:
    out = []
    for spec in specs:
        name = _require(spec, "name", "a [[nuisances]] entry")
        if "normalisation" in spec:
            out.append(Nuisance(name, normalisation=float(spec["normalisation"]), constraint=spec.get("constraint", "normal")))
            continue
        ratios = []
        for key in ("up", "down"):
            expression = _require(spec, key, f"nuisance {name!r}")
            try:
                ratios.append(torch.as_tensor(eval(expression, {"__builtins__": {}},  # noqa: S307
                                                   {**EXPRESSION_NAMES, **values}), dtype=DTYPE))
            except Exception as error:  # the user's expression: name it with the error
                raise ValueError(f"nuisance {name!r}: {key} = {expression!r} cannot be evaluated: {error}") from error
        out.append(Nuisance(name, up=ratios[0], down=ratios[1], constraint=spec.get("constraint", "normal")))
    return out


def run_eft_study(path, output=None, progress: bool = False) -> dict:
    """Runs the study of the TOML file `path` into `output` (the file's `output`, relative to it, by
    default) and returns the record written to limits.json."""
    from ..data import simulate
    from ..estimators import RatioEstimator
    from ..plots import contours_2d

    path = Path(path)
    raw = load_eft_study(path)
    start = time.perf_counter()
    home = path.parent
    out = Path(output) if output is not None else home / raw.get("output", f"{raw.get('name', 'eft')}-study")
    out = claim(out, "study", "choose another output folder (goldmine run -o, or output = ... in the study file)")
    torch.set_num_threads(1)

    params, ev = raw["parameters"], raw["events"]
    names = list(params["names"])
    if len(names) != 2:
        raise ValueError(f"{path} [parameters]: an EFT study limits two coefficients on a grid; got names = {names}.")
    prior = box_prior(torch.tensor(params["low"], dtype=DTYPE), torch.tensor(params["high"], dtype=DTYPE))
    reference = torch.tensor(params.get("reference", [0.0] * len(names)), dtype=DTYPE)
    exponents = components(len(names), ev.get("max_power", 2))
    lhe = home / ev["lhe"]
    if not lhe.exists():
        if "generate" not in ev:
            raise ValueError(f"{lhe} does not exist: give the LHE file, or generate = N events of the built-in process.")
        from .process import EFTProcess

        sim = EFTProcess("parton")
        morphing = choose_benchmarks(exponents, prior, fixed=reference, seed=int(ev.get("seed", 0)))
        sample = sim.weighted_events(int(ev["generate"]), morphing.benchmarks, seed=int(ev.get("seed", 0)))
        write_lhe(lhe, sample.parton, sample.weights, morphing.benchmarks, parameter_names=names)
    ids = list(ev.get("weights", declared_weights(lhe)))
    events = read_lhe(lhe, ev["observables"], ids, parameter_names=names, cuts=ev.get("cuts", ()))
    values = dict(zip(events.observables, events.x.T))
    source = lhe_source(events, exponents, prior, reference, name=raw.get("name", "eft"),
                        nuisances=_nuisances(raw.get("nuisances", []), values))

    limits = raw.get("limits", {})
    luminosity = float(limits.get("expected_events", 500.0)) / float(source.cross_section(source.reference[None])[0])
    data_spec = raw.get("data", {})
    data_path = out / "data.h5"
    data_path.unlink(missing_ok=True)
    data = simulate(source, int(data_spec.get("runs", 10_000)), data_path, seed=int(data_spec.get("seed", 0)),
                       progress=progress)
    train = dict(raw["train"])
    methods = train.pop("methods")
    shared = {k: v for k, v in train.items() if not isinstance(v, dict)}
    likelihoods = {"truth": ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=len(names)),
                   "rate only": ExtendedLikelihood(None, source.cross_section, luminosity, len(names),
                                                   nuisance_dim=source.theta_dim - source.poi_dim)}
    for method in methods:
        options = {**shared, **train.get(method, {}), "progress": progress}
        fitted = RatioEstimator(method, **options).fit(data)
        likelihoods[method] = ExtendedLikelihood(fitted, source.cross_section, luminosity, len(names), prior=source.prior)

    levels = tuple(limits.get("levels", (0.68, 0.95)))
    points, width = int(limits.get("grid", 11)), float(limits.get("width", 0.5))
    axis = torch.linspace(-width, width, points, dtype=DTYPE)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2) + reference
    data_asimov = asimov(source, source.reference, luminosity)
    hist = limits.get("histogram", {})
    hist_obs = tuple(events.observables.index(o) for o in hist.get("observables", events.observables[:2]))
    toys = int(limits.get("toys", 0))
    if toys < 0:
        raise ValueError(f"{path} [limits]: toys = {toys}; give a number of pseudo-experiments ≥ 0 (0 runs none).")
    theta = torch.cat([reference, torch.zeros(source.theta_dim - len(names), dtype=DTYPE)])
    toy_limits = {name: _toys(lik, grid, source, theta, toys, levels, data_asimov, progress)
                  for name, lik in likelihoods.items() if toys and lik.model is not None}
    areas, q95 = {}, {}
    for systematics in (True, False):
        tag = "systematics" if systematics else "none"
        found = {name: wilks_limits(_profile(lik, grid, data_asimov, systematics, toy_limits.get(name)), levels)
                 for name, lik in likelihoods.items()}
        found["pyhf"] = histogram_limits(source, grid, reference, luminosity, observables=hist_obs,
                                         bins=int(hist.get("bins", 5)), systematics=systematics, levels=levels)
        areas[tag] = {name: {str(lv): lim.areas[lv] for lv in levels} for name, lim in found.items()}
        if systematics:
            q95 = {name: lim.profile.q for name, lim in found.items()}
    contours_2d(grid, q95, levels=(5.99,), truth=reference.tolist(), labels=tuple(names), path=out / "limits.png")
    record = {"study": raw.get("name", "eft"), "lhe": str(lhe), "events": int(events.x.shape[0]),
              "observables": list(events.observables), "nuisances": list(source.nuisance_names),
              "luminosity": luminosity, "grid_cell": float((axis[1] - axis[0]) ** 2) if points > 1 else 0.0,
              "areas": areas, "seconds": time.perf_counter() - start}
    if toys:
        record["toys"] = {name: _toy_record(name, found, levels) for name, found in toy_limits.items()}
    record["seconds"] = time.perf_counter() - start
    (out / "limits.json").write_text(json.dumps(record, indent=2))
    data_path.unlink(missing_ok=True)
    return record


def _profile(likelihood: ExtendedLikelihood, grid, data, systematics: bool, toys=None):
    """The profile of the Asimov data: a surrogate's (whose shape terms the minimiser would difference at every step)
    on its shape terms tabulated at Chebyshev nodes in ν (`interpolated_profile`; with ν profiled and `toys`, the one
    computed from the toys' table), the truth's and the rate's exactly."""
    from .pooled_toys import interpolated_profile

    if not likelihood.values_only:
        return profile(likelihood, grid, data, systematics=systematics)
    if systematics and toys is not None:
        return toys.also[0]
    return interpolated_profile(likelihood, grid, data, systematics=systematics)


def _toys(likelihood: ExtendedLikelihood, grid, source, theta, toys: int, levels, asimov, progress: bool):
    """T toys at θ with ν profiled (`pooled_toy_limits`); for a surrogate, the Asimov data's profile with ν profiled
    comes from the same table of shape terms (in `.also`), so that no event is tabulated twice."""
    from .pooled_toys import pooled_toy_limits

    return pooled_toy_limits(likelihood, grid, source, theta, toys, levels=levels, systematics=True,
                             progress=progress, also=(asimov,) if likelihood.values_only else ())


def _toy_record(name: str, found, levels) -> dict:
    """One likelihood's toys (`ToyLimits`) as {"toys", "bands": level → quantiles of the areas, "coverage":
    level → [fraction, binomial error]}, warning where the coverage is too low by the Wilks check's rule."""
    import warnings

    from ..inference.wilks_check import under_covers

    toys = len(found.counts)
    entry = {"toys": toys, "bands": {str(lv): found.bands(lv) for lv in levels},
             "coverage": {str(lv): list(found.coverage(lv)) for lv in levels}}
    for lv in levels:
        coverage, stderr = found.coverage(lv)
        if under_covers(coverage, lv, toys, points=len(levels)):
            warnings.warn(f"{name}'s {lv:.0%} regions cover the reference in {coverage:.3f} ± {stderr:.3f} of {toys} "
                          f"toys, too few for {lv:.0%}: its limits are too tight. Train on more runs, or quote "
                          "Neyman limits from the toys.", RuntimeWarning, stacklevel=3)
    return entry


def is_event_study(raw: dict) -> bool:
    """Whether a parsed study file is an EFT study of this module (it has [events] and no simulator)."""
    return "events" in raw and "simulator" not in raw


def areas_table(record: dict) -> str:
    """The areas of limits.json as the printed table: one row per method, 68% and 95% with and without
    systematics."""
    lines = [f"{record['events']} events of {record['lhe']}; nuisances {record['nuisances']}",
             f"{'method':>10} {'68% syst':>9} {'95% syst':>9} {'68% none':>9} {'95% none':>9}"]
    for name, s in record["areas"]["systematics"].items():
        n = record["areas"]["none"][name]
        lines.append(f"{name:>10} " + " ".join(f"{v:9.4f}" for v in (*s.values(), *n.values())))
    toys = record.get("toys", {})
    if toys:
        levels = list(next(iter(toys.values()))["coverage"])
        lines.append(f"{next(iter(toys.values()))['toys']} toys at the reference, ν profiled: "
                     "95% area median [−1σ, +1σ] and the coverage at each level")
        for name, entry in toys.items():
            b = entry["bands"].get("0.95", next(iter(entry["bands"].values())))
            cov = "  ".join(f"{lv}: {c:.3f} ± {e:.3f}" for lv, (c, e) in entry["coverage"].items() if lv in levels)
            lines.append(f"{name:>10} {b['median']:.4f} [{b['-1σ']:.4f}, {b['+1σ']:.4f}]  {cov}")
    return "\n".join(lines)


def main(argv=None) -> None:
    """`python -m goldmine.physics.study STUDY.toml [--output DIR]`: runs the study and prints its areas."""
    import argparse

    parser = argparse.ArgumentParser(description="An EFT study: LHE in, limits with systematics out.")
    parser.add_argument("study", type=Path)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    record = run_eft_study(args.study, args.output, progress=True)
    print(areas_table(record))

if __name__ == "__main__":
    main()
