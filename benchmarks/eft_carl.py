"""Why carl's EFT limits are too tight at 10⁴ runs: three suspects measured against the truth, ν fixed.

On the events, Asimov data and grid of `benchmarks/eft.py` (whose saved models in DIR/models it loads,
training those missing with the same seeds), for carl as the table trains it and three variants:

    normalisation   E_SM[r̂(x|θ)] over the SM-weighted events should be 1 for every θ; carl's r̂ divided by
                    it (p̂ = r̂·p_SM normalised) beside carl's own
    overfitting     carl with keep="best" (the weights of its lowest validation loss) instead of the final ones
    nuisances       carl trained on the same events without nuisances (θ = (c₁, c₂) only)

each by the RMS over the grid of q − q_truth and by its 68% and 95% areas beside the truth's.

Run as `python benchmarks/eft_carl.py [--points P] [--runs R] [--out DIR]` (DIR as given to eft.py);
writes DIR/eft_carl.json and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from eft import LEVELS, fitted, make_source, training_summary  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import write  # noqa: E402

import goldmine as gm  # noqa: E402
from goldmine.physics import ExtendedLikelihood, asimov, profile, wilks_limits  # noqa: E402
from goldmine.physics.limits import Profile  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=7)
    parser.add_argument("--expected", type=float, default=500.0)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eft")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    axis = torch.linspace(-args.width, args.width, args.points, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    rows = {}
    for with_nuisances in (True, False):
        source, _, _ = make_source(args.events, nuisances=with_nuisances)
        luminosity = args.expected / float(source.cross_section(source.reference[None])[0])

        def train(source=source, **options):
            path = args.out / f"eft_carl_{int(time.time())}.h5"
            path.unlink(missing_ok=True)
            est = gm.RatioEstimator("carl", progress=False, **options).fit(
                gm.simulate(source, args.runs, path, seed=0, progress=False))
            path.unlink(missing_ok=True)
            return est

        data = asimov(source, source.reference, luminosity)
        truth = profile(ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=2), grid, data,
                        systematics=False)
        rows["truth" if with_nuisances else "truth, no nuisances"] = {"q_rms_error": 0.0, **areas(truth)}
        models = {"carl": lambda: train()} if with_nuisances else {"carl_no_nuisances": lambda: train()}
        if with_nuisances:
            models["carl_keep_best"] = lambda: train(keep="best")
        for name, make in models.items():
            est, _ = fitted(args, name, make)
            lik = ExtendedLikelihood(est, source.cross_section, luminosity, 2, prior=source.prior)
            found = profile(lik, grid, data, systematics=False)
            rows[name] = {"q_rms_error": rms(found.q, truth.q), **areas(found), "history": training_summary(est)}
            if name == "carl":  # the normalisation of r̂ under the SM events: log E_SM[r̂(x|θ)]
                params = torch.cat([grid, torch.zeros(len(grid), source.theta_dim - 2, dtype=torch.float64)], -1)
                with torch.no_grad():
                    log_r = lik.shape_terms(params, data.x).to(torch.float64)
                log_norm = torch.logsumexp(log_r + torch.log(data.weights / data.weights.sum()), -1)
                normalised = Profile(grid, found.log_l - data.count * log_norm, found.nuisances)
                rows["carl normalised"] = {"q_rms_error": rms(normalised.q, truth.q), **areas(normalised),
                                           "mean_r_under_sm_min": float(log_norm.exp().min()),
                                           "mean_r_under_sm_max": float(log_norm.exp().max())}
    record = {"benchmark": "eft_carl", "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
              "grid_cell": float((axis[1] - axis[0]) ** 2), "nuisances_fixed_at_0": rows,
              "seconds": time.perf_counter() - start}
    write(record, args.out / "eft_carl.json")
    print(f"{'':>22} {'RMS q − q_truth':>16} {'68%':>7} {'95%':>7}")
    for name, r in rows.items():
        print(f"{name:>22} {r['q_rms_error']:16.2f} {r['0.68']:7.4f} {r['0.95']:7.4f}")
    print(f"{args.out / 'eft_carl.json'}; {record['seconds']:.0f} s")


def rms(q: torch.Tensor, q_truth: torch.Tensor) -> float:
    return float(((q - q_truth) ** 2).mean().sqrt())


def areas(prof) -> dict:
    return {str(lv): a for lv, a in wilks_limits(prof, LEVELS).areas.items()}


if __name__ == "__main__":
    main()
