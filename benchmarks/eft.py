"""Expected limits on two EFT coefficients at detector level: gold, carl and the binned analysis against the truth.

The built-in process (`goldmine.physics.EFTProcess`) at detector level (14 observables) gives N
weighted events with their weights at morphing benchmarks and two nuisances (a 10% normalisation and
a scale-like shape variation of the parton mass). `WeightedEvents` unweights them at any (θ, ν), so
every method trains on the same mined runs (equal budgets), and every limit uses the same Asimov data
(all N events weighted by L·w_i(SM)) and the same luminosity (L·σ_fid(SM) = --expected events):

    truth      the events' exact likelihood: it knows every event's parton-level weight, so it is the
               bound that no detector-level method can beat
    alices     gold: a ratio network on joint ratios and scores, r̂(x|θ, ν)
    carl       no gold: a classifier between runs at (θ, ν) and at the reference
    pyhf       the binned HistFactory analysis of (m_ℓℓ, cos θ_CS), 5 × 5 bins of equal expected count
    rate       the Poisson count alone

each with the nuisances profiled (torch's L-BFGS; for the surrogates on their shape terms and log σ
tabulated at Chebyshev nodes in ν, `goldmine.physics.pooled_toys.interpolated_profile`, --nodes per
nuisance) and fixed ("without systematics"), on an even grid over (c₁, c₂). `--carl-runs R1 R2 ...`
trains one carl per number of runs (carl@R beside the gold methods' --runs): "gold at N runs matches carl
at 10·N". Fitted models are saved in DIR/models and loaded from there by later runs into the same DIR. Alongside: the areas of the 95% Cramér–Rao ellipses of the Fisher information (truth,
the histogram and sally's learned score), nuisances profiled. Estimators run with their default settings.

Toys (`--toys T`, `--profiled-toys T'`): T pseudo-experiments at the SM (n ~ Poisson(L σ) events,
auxiliary measurements of ν fluctuated) for the truth and alices with ν fixed, T' with ν profiled:
the median and ±1σ/±2σ bands of their 68% and 95% areas beside Asimov's, and the Neyman coverage of
the regions (the fraction that holds the SM) with its binomial standard error. The toys resample the
weighted events, so `pooled_toy_limits` evaluates each distinct event once per grid point and ν node;
`--check-toys` of them are also profiled exactly, to measure the interpolation's error in q. `--only-toys` trains
alices alone and writes DIR/eft_toys.json instead of the Asimov table.

Run as `python benchmarks/eft.py [--events N] [--runs R] [--carl-runs R ...] [--points P] [--nodes P]
[--toys T] [--profiled-toys T'] [--check-toys C] [--only-toys] [--quick] [--out DIR]`; writes DIR/eft.json and DIR/eft.png (the 95% contours) and
prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import write  # noqa: E402

import goldmine as gm  # noqa: E402
import goldmine.plots  # noqa: E402,F401
from goldmine.physics import (EFTProcess, ExtendedLikelihood, Nuisance, WeightedEvents, asimov,  # noqa: E402
                              choose_benchmarks, ellipse_area, fisher_information, histogram_limits, profile, wilks_limits)
from goldmine.physics.pooled_toys import (NODES, compare_profiles, interpolated_profile,  # noqa: E402
                                         pooled_toy_limits)
from goldmine.physics.process import EXPONENTS, OBSERVABLES  # noqa: E402

LEVELS = (0.68, 0.95)


def targets(areas: dict) -> dict:
    """The issue's targets at 95%, where the run has what they need: the gold limits at least 30% smaller in
    area than the histogram analysis (beside the ratio to the truth, which no detector-level method can beat:
    below 1 means regions too small, not better ones), with and without systematics."""
    out = {}
    for tag, a in areas.items():
        gold, pyhf, truth = a["alices"]["0.95"], a["pyhf"]["0.95"], a["truth"]["0.95"]
        trusted = gold >= truth  # smaller than the truth's region: overconfident, so no gain can be claimed
        out[f"gold area ≤ 0.7 × pyhf's ({tag})"] = {
            "met": trusted and gold <= 0.7 * pyhf, "gold_over_pyhf": gold / pyhf, "gold_over_truth": gold / truth,
            **({} if trusted else {"why_not": "the gold region is smaller than the truth's: overconfident"})}
    out["Neyman coverage of the gold limits within 2 points (≥ 500 toys)"] = "not run: Wilks limits only"
    return out


def make_source(events: int, nuisances: bool = True) -> tuple:
    """The benchmark's detector-level events as a `WeightedEvents` source (with the normalisation and scale
    nuisances, or none), the morphing, and the mask of the generated events that pass the cuts."""
    sim = EFTProcess("detector")
    morphing = choose_benchmarks(EXPONENTS, sim.prior, fixed=sim.reference, seed=0)
    sample = sim.weighted_events(events, morphing.benchmarks, seed=1)
    keep = sample.passed
    tilt = (sample.parton[keep, 0] / 0.35) ** 0.3
    variations = [Nuisance("normalisation", normalisation=0.1), Nuisance("scale", up=tilt, down=1 / tilt)]
    source = WeightedEvents(sample.x[keep], sample.weights[keep], morphing, sim.prior, sim.reference,
                            name="eft_detector", nuisances=variations if nuisances else ())
    return source, morphing, keep


def fitted(args, name: str, train) -> tuple:
    """(estimator, training seconds): loaded from DIR/models/<name> when a former run with the same settings
    saved it there (seconds then None), else trained by `train()` and saved."""
    folder = args.out / "models" / name
    if (folder / "config.json").exists():
        return gm.load(folder), None
    t0 = time.perf_counter()
    est = train()
    seconds = time.perf_counter() - t0
    est.save(folder)
    return est, seconds


def carl_name(runs: int, gold_runs: int) -> str:
    """carl's row in the tables: "carl" on the gold methods' runs, "carl@R" on R others."""
    return "carl" if runs == gold_runs else f"carl@{runs}"


def carl_target(areas: dict, q_error: dict, gold_runs: int, carl_runs: list) -> dict:
    """"Gold at N runs matches carl at 10·N": carl on 10·N runs against alices on N, by the q error against the
    truth (RMS over the grid, ν fixed) and by the 95% areas over the truth's (with and without systematics).
    Matched when carl@10N's q error is at least alices' (carl needs ≥ 10× the runs for gold's accuracy)."""
    key = "gold at N runs matches carl at 10·N"
    name = carl_name(10 * gold_runs, gold_runs)
    if 10 * gold_runs not in carl_runs:
        return {key: f"not run: carl needs --carl-runs {10 * gold_runs}"}
    out = {"met": q_error[name] >= q_error["alices"], "q_error_carl_10N_over_gold": q_error[name] / q_error["alices"]}
    for tag, a in areas.items():
        truth = a["truth"]["0.95"]
        out[f"95% area / truth ({tag})"] = {"alices": a["alices"]["0.95"] / truth, name: a[name]["0.95"] / truth}
    return {key: out}


def training_summary(est) -> dict:
    """Where the validation loss of a fit was lowest and where it ended: a loss that rises to the end means
    the kept (final) weights overfit, which makes a ratio surrogate's regions too small."""
    h = est.history_
    val = [float(v) for v in h.get("val_loss", [])]
    if not val:
        return {}
    best = min(range(len(val)), key=val.__getitem__)
    return {"epochs": len(val), "val_loss_first": val[0], "val_loss_best": val[best], "best_epoch": best + 1,
            "val_loss_final": val[-1], "train_loss_final": float(h["train_loss"][-1]), "kept": h.get("kept")}


def run_toys(args, source, likelihoods: dict, grid, data_asimov) -> dict:
    """The toys' limits at the SM: truth and alices with ν fixed (`--toys`) and with ν profiled
    (`--profiled-toys`), beside each one's Asimov areas. Every toy's shape terms come from one table of the
    distinct events at every grid point and ν node (`pooled_toy_limits`: exact with ν fixed, interpolated in ν
    when profiled); `--check-toys` toys are also profiled exactly, to measure the interpolation's error in q."""
    plan = [("truth", False, args.toys), ("alices", False, args.toys), ("truth", True, args.profiled_toys),
            ("alices", True, args.profiled_toys)]
    out = {}
    for name, systematics, n in plan:
        if not n:
            continue
        lik, t0 = likelihoods[name], time.perf_counter()
        found = pooled_toy_limits(lik, grid, source, source.reference, n, seed=10_000, levels=LEVELS,
                                  systematics=systematics, nodes=args.nodes, progress=False)
        seconds = time.perf_counter() - t0
        at_asimov = wilks_limits(interpolated_profile(lik, grid, data_asimov, systematics=systematics,
                                                      nodes=args.nodes), LEVELS)
        out[f"{name} ({'systematics' if systematics else 'none'})"] = {
            "toys": n, "seconds": seconds, "mean_events": float(found.counts.mean()),
            **{f"asimov_{lv}": at_asimov.areas[lv] for lv in LEVELS},
            **{f"bands_{lv}": found.bands(lv) for lv in LEVELS},
            **{f"coverage_{lv}": dict(zip(("fraction", "stderr"), found.coverage(lv))) for lv in LEVELS},
            **({"interpolation_check": compare_profiles(lik, grid, source, source.reference, args.check_toys,
                                                        seed=10_000, nodes=args.nodes)}
               if systematics and args.check_toys else {})}
        print(f"{name} ({'systematics' if systematics else 'none'}): {n} toys in {seconds:.0f} s", flush=True)
    return out


def coverage_target(toys: dict) -> dict | str:
    """Neyman coverage of the gold (alices) 95% regions within 2 points of nominal, from the most toys run."""
    gold = {k: v for k, v in toys.items() if k.startswith("alices")}
    if not gold:
        return "not run: no toys of alices"
    out = {}
    for key, v in gold.items():
        c = v["coverage_0.95"]
        out[key] = {"met": v["toys"] >= 500 and abs(c["fraction"] - 0.95) <= 0.02, "toys": v["toys"],
                    "coverage": c["fraction"], "stderr": c["stderr"],
                    **({} if v["toys"] >= 500 else {"why_not": f"{v['toys']} toys, fewer than 500"})}
    return out


def print_toys(toys: dict):
    print(f"{'toys':>22} {'n':>5} {'95% Asimov':>10} {'95% median [−1σ, +1σ]':>26} {'cov 68%':>14} {'cov 95%':>14}")
    for key, v in toys.items():
        b, c68, c95 = v["bands_0.95"], v["coverage_0.68"], v["coverage_0.95"]
        print(f"{key:>22} {v['toys']:5d} {v['asimov_0.95']:10.4f} {b['median']:8.4f} [{b['-1σ']:.4f}, {b['+1σ']:.4f}] "
              f"{c68['fraction']:7.3f}±{c68['stderr']:.3f} {c95['fraction']:7.3f}±{c95['stderr']:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="weighted events generated (before cuts)")
    parser.add_argument("--runs", type=int, default=10_000, help="mined runs every method trains on")
    parser.add_argument("--carl-runs", type=int, nargs="+", default=None, help="mined runs carl trains on, one "
                        "carl per number (default: --runs); carl at R ≠ --runs runs is reported as carl@R")
    parser.add_argument("--points", type=int, default=11, help="grid points per axis over (c₁, c₂)")
    parser.add_argument("--expected", type=float, default=500.0, help="expected SM events: L·σ_fid(SM)")
    parser.add_argument("--width", type=float, default=0.5, help="the grid covers [−width, width]²")
    parser.add_argument("--toys", type=int, default=0, help="toys at the SM with ν fixed, for truth and alices: "
                        "bands of the limits and Neyman coverage (0: none)")
    parser.add_argument("--profiled-toys", type=int, default=0, help="toys with ν profiled, for truth and alices "
                        "(each profiles ν at every grid point: alices' are slow)")
    parser.add_argument("--nodes", type=int, default=NODES, help="Chebyshev nodes per nuisance of the profiled toys' "
                        "table (odd: ν = 0 is a node)")
    parser.add_argument("--check-toys", type=int, default=3, help="profiled toys also profiled exactly, to measure "
                        "the interpolation's error in q")
    parser.add_argument("--only-toys", action="store_true", help="train alices only, run the toys and write "
                        "DIR/eft_toys.json (no Asimov table)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3000 events, 2000 runs, 5 points")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eft")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs, args.points = 3000, 2000, 5
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    source, morphing, keep = make_source(args.events)
    luminosity = args.expected / float(source.cross_section(source.reference[None])[0])
    path = args.out / f"eft_{os.getpid()}.h5"  # runs that share DIR (and its saved models) write their own data
    path.unlink(missing_ok=True)
    data = gm.simulate(source, args.runs, path, seed=0, progress=False)
    fits = {}
    estimators = {"alices": lambda: gm.RatioEstimator("alices", progress=False),
                  "sally": lambda: gm.ScoreEstimator("sally", progress=False)}
    for name, make in estimators.items():
        if args.only_toys and name != "alices":
            continue
        fits[name] = fitted(args, name, lambda make=make: make().fit(data))
    carls = [] if args.only_toys else (args.carl_runs or [args.runs])
    for runs in carls:  # carl on its own budget: "gold at N runs matches carl at 10·N"
        carl_path = args.out / f"eft_{os.getpid()}_{runs}.h5"

        def train(runs=runs, carl_path=carl_path):
            carl_path.unlink(missing_ok=True)
            carl_data = data if runs == args.runs else gm.simulate(source, runs, carl_path, seed=0, progress=False)
            est = gm.RatioEstimator("carl", progress=False).fit(carl_data)
            carl_path.unlink(missing_ok=True)
            return est

        fits[carl_name(runs, args.runs)] = fitted(args, carl_name(runs, args.runs), train)
    path.unlink(missing_ok=True)

    axis = torch.linspace(-args.width, args.width, args.points, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    data_asimov = asimov(source, source.reference, luminosity)
    if args.only_toys:
        likelihoods = {"truth": ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=2),
                       "alices": ExtendedLikelihood(fits["alices"][0], source.cross_section, luminosity, 2,
                                                    prior=source.prior)}
        toys = run_toys(args, source, likelihoods, grid, data_asimov)
        record = {"benchmark": "eft_toys", "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
                  "events_after_cuts": int(keep.sum()), "luminosity": luminosity,
                  "grid_cell": float((axis[1] - axis[0]) ** 2), "toys": toys,
                  "targets": {"Neyman coverage of the gold limits within 2 points (≥ 500 toys)": coverage_target(toys)},
                  "training_seconds": {k: v[1] for k, v in fits.items()}, "seconds": time.perf_counter() - start}
        write(record, args.out / "eft_toys.json")
        print_toys(toys)
        print(f"{args.out / 'eft_toys.json'}; {record['seconds']:.0f} s")
        return
    likelihoods = {"truth": ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=2),
                   "alices": ExtendedLikelihood(fits["alices"][0], source.cross_section, luminosity, 2, prior=source.prior),
                   **{carl_name(r, args.runs): ExtendedLikelihood(fits[carl_name(r, args.runs)][0], source.cross_section,
                                                                  luminosity, 2, prior=source.prior) for r in carls},
                   "rate": ExtendedLikelihood(None, source.cross_section, luminosity, 2, nuisance_dim=2)}
    obs = (OBSERVABLES.index("m_ll"), OBSERVABLES.index("cos_theta_cs"))
    results, q95, q_none, profile_seconds = {}, {}, {}, {}
    for systematics in (True, False):
        tag = "systematics" if systematics else "none"
        found = {}
        for name, lik in likelihoods.items():
            t0 = time.perf_counter()
            prof = profile(lik, grid, data_asimov, systematics=systematics) if name in ("truth", "rate") else \
                interpolated_profile(lik, grid, data_asimov, systematics=systematics, nodes=args.nodes)
            found[name] = wilks_limits(prof, LEVELS)
            profile_seconds[f"{name} ({tag})"] = time.perf_counter() - t0
        found["pyhf"] = histogram_limits(source, grid, [0.0, 0.0], luminosity, observables=obs, bins=5,
                                         systematics=systematics, levels=LEVELS)
        results[tag] = {name: {str(lv): lim.areas[lv] for lv in LEVELS} for name, lim in found.items()}
        if systematics:
            q95 = {name: lim.profile.q for name, lim in found.items()}
        else:
            q_none = {name: lim.profile.q for name, lim in found.items()}
    # how far each learned Asimov surface lies from the truth's, with ν fixed: an error of the surrogate's
    # ratio in θ, which no treatment of the nuisances can cause or cure
    q_error = {name: float(((q_none[name] - q_none["truth"]) ** 2).mean().sqrt())
               for name in ["alices"] + [carl_name(r, args.runs) for r in carls]}
    fisher = {"truth": fisher_information(source, [0.0, 0.0], luminosity),
              "histogram": fisher_information(source, [0.0, 0.0], luminosity, "histogram", observables=obs, bins=5),
              "sally": fisher_information(source, [0.0, 0.0], luminosity, "score", score=fits["sally"][0].score)}
    png = gm.plots.contours_2d(grid, q95, levels=(5.99,), truth=[0.0, 0.0], labels=("c₁", "c₂"),
                               path=args.out / "eft.png")
    record = {"benchmark": "eft", "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
              "events_after_cuts": int(keep.sum()), "mean_morphing_spread": morphing.mean_spread,
              "luminosity": luminosity, "grid_cell": float((axis[1] - axis[0]) ** 2),
              "areas": results, "fisher_95_areas": {k: ellipse_area(v) for k, v in fisher.items()},
              "targets": targets(results) | carl_target(results, q_error, args.runs, carls),
              "q_rms_error_vs_truth_without_systematics": q_error,
              "profile_seconds": profile_seconds,
              "training_seconds": {k: v[1] for k, v in fits.items()},
              "training_histories": {k: training_summary(v[0]) for k, v in fits.items()},
              "seconds": time.perf_counter() - start}
    if args.toys or args.profiled_toys:
        record["toys"] = run_toys(args, source, {k: likelihoods[k] for k in ("truth", "alices")}, grid, data_asimov)
        key = "Neyman coverage of the gold limits within 2 points (≥ 500 toys)"
        record["targets"][key] = coverage_target(record["toys"])
    record["seconds"] = time.perf_counter() - start
    write(record, args.out / "eft.json")

    print(f"{int(keep.sum())} detector-level events of {args.events}; {args.runs} mined runs; "
          f"{args.expected:.0f} expected SM events; grid {args.points}² over [−{args.width}, {args.width}]²")
    print(f"{'method':>8} {'68% syst':>9} {'95% syst':>9} {'68% none':>9} {'95% none':>9} {'95% syst / truth':>16}")
    truth95 = results["systematics"]["truth"]["0.95"]
    for name in results["systematics"]:
        s, n = results["systematics"][name], results["none"][name]
        print(f"{name:>8} {s['0.68']:9.4f} {s['0.95']:9.4f} {n['0.68']:9.4f} {n['0.95']:9.4f} "
              f"{s['0.95'] / truth95 if truth95 else float('nan'):16.2f}")
    print("Fisher information (nuisances profiled), area of the 95% ellipse: " +
          ", ".join(f"{k} {v:.4f}" for k, v in record["fisher_95_areas"].items()))
    print("RMS over the grid of q(θ) − q_truth(θ), ν fixed (the learned surface's error): " +
          ", ".join(f"{k} {v:.2f}" for k, v in q_error.items()))
    if "toys" in record:
        print_toys(record["toys"])
    print(f"{png}; {args.out / 'eft.json'}; {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
