"""EFT limits the MadMiner way: a Les Houches file in, limits on two coefficients with systematics out.

1. the built-in process q q̄ → ℓ⁻ℓ⁺ with two dimension-six-like coefficients θ = (c₁, c₂): benchmarks
   chosen for a small morphing-weight spread, weighted events written as an LHE file with a
   reweighting block (what a generator's reweighting writes);
2. the file read back with pylhe: observables as named expressions, smearing, a cut; two nuisances
   (a 10% normalisation and a scale-like shape variation) as event-weight variations;
3. gold mined from the weights by morphing, and alices trained on r̂(x|θ, ν);
4. the expected (Asimov) 68% and 95% limits at the Standard Model from the extended likelihood
   Poisson(n|L σ(θ, ν)) × Π r̂(x_i|θ, ν), with the nuisances profiled and fixed: the truth (the
   events' exact likelihood), alices, and the binned pyhf analysis of (m_ℓℓ, cos θ*);
5. the Fisher information: truth, rate only, histogram, sally's score, with the nuisances profiled.

Run as `python examples/eft_limits.py [--quick] [--out DIR]` (needs `pip install 'goldmine[physics]'`);
about a minute with --quick (a smoke test whose numbers mean little), a few minutes without.
"""

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
import goldmine.plots  # noqa: F401  (gm.plots)
from goldmine.physics import (EFTProcess, ExtendedLikelihood, Nuisance, asimov, choose_benchmarks, ellipse_area,
                              fisher_information, histogram_limits, lhe_source, profile, read_lhe, wilks_limits, write_lhe)
from goldmine.physics.process import EXPONENTS

LEVELS = (0.68, 0.95)
EXPECTED_EVENTS = 500  # L·σ_fid(SM): the luminosity is chosen to give this many events


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer events, runs, epochs and grid points")
    parser.add_argument("--out", default=Path(__file__).parent / "eft_limits-output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    events_n, runs, epochs, points = (2000, 2000, 3, 7) if args.quick else (10_000, 20_000, 30, 11)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. benchmarks, weighted events, an LHE file
    sim = EFTProcess("parton")
    morphing = choose_benchmarks(EXPONENTS, sim.prior, fixed=sim.reference, seed=0)
    print(f"benchmarks: {[[round(v, 3) for v in b] for b in morphing.benchmarks.tolist()]}")
    print(f"mean morphing-weight spread Σ_b α_b² over the prior: {morphing.mean_spread:.2f}")
    sample = sim.weighted_events(events_n, morphing.benchmarks, seed=1)
    lhe = write_lhe(args.out / "eft.lhe", sample.parton, sample.weights, morphing.benchmarks)

    # 2. read it back: observables, smearing, a cut, nuisances
    observables = {"m_ll": "(p[0] + p[1]).m / 1000", "cos_theta": "collins_soper(p[0], p[1])",
                   "y_ll": "(p[0] + p[1]).rapidity", "pt_l": "p[0].pt / 1000", "eta_l": "p[0].eta"}
    smearing = {"m_ll": lambda m, g: m * (1 + 0.03 * torch.randn(m.shape, generator=g, dtype=m.dtype)),
                "cos_theta": lambda c, g: c + 0.05 * torch.randn(c.shape, generator=g, dtype=c.dtype)}
    events = read_lhe(lhe, observables, [f"b{b}" for b in range(len(morphing.benchmarks))], smearing=smearing,
                      cuts=["pt_l > 0.05"])
    tilt = (events.x[:, 0] / 0.35) ** 0.3
    nuisances = [Nuisance("normalisation", normalisation=0.1), Nuisance("scale", up=tilt, down=1 / tilt)]
    source = lhe_source(events, EXPONENTS, sim.prior, sim.reference)
    source = type(source)(source.x, events.weights, source.morphing, sim.prior, sim.reference, name="eft_lhe",
                          nuisances=nuisances)
    luminosity = EXPECTED_EVENTS / float(source.cross_section(source.reference[None])[0])
    print(f"{len(events.x)} of {events_n} events pass the cut; L chosen for {EXPECTED_EVENTS} expected SM events")

    # 3. gold and a surrogate of r(x|θ, ν)
    path = args.out / "eft.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(source, runs, path, seed=0, progress=False)
    training = {"epochs": epochs, "seed": 0, "progress": False}
    alices = gm.RatioEstimator("alices", **training).fit(data)
    sally = gm.ScoreEstimator("sally", **training).fit(data)

    # 4. expected limits at the Standard Model
    axis = torch.linspace(-0.5, 0.5, points, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    asimov_data = asimov(source, source.reference, luminosity)
    truth = ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=2)
    learned = ExtendedLikelihood(alices, source.cross_section, luminosity, poi_dim=2, prior=source.prior)
    rate = ExtendedLikelihood(None, source.cross_section, luminosity, poi_dim=2, nuisance_dim=2)
    results, q95 = {}, {}
    for systematics in (True, False):
        tag = "with systematics" if systematics else "without"
        found = {"truth": wilks_limits(profile(truth, grid, asimov_data, systematics=systematics), LEVELS),
                 "alices": wilks_limits(profile(learned, grid, asimov_data, systematics=systematics), LEVELS),
                 "rate only": wilks_limits(profile(rate, grid, asimov_data, systematics=systematics), LEVELS),
                 "pyhf (m_ll, cos θ*)": histogram_limits(source, grid, [0.0, 0.0], luminosity, observables=(0, 1),
                                                         bins=4, systematics=systematics, levels=LEVELS)}
        results[tag] = {name: lim.areas for name, lim in found.items()}
        q95.update({f"{name}, {tag}": lim.profile.q for name, lim in found.items() if systematics})
    gm.plots.contours_2d(grid, q95, truth=[0.0, 0.0], labels=("c₁", "c₂"), path=args.out / "eft_limits.png")

    print(f"\nexpected limits at the SM, {EXPECTED_EVENTS} events: areas of the 68% and 95% regions in (c₁, c₂)")
    print(f"{'method':>22} {'68%, syst':>10} {'95%, syst':>10} {'68%, none':>10} {'95%, none':>10}")
    for name in results["with systematics"]:
        s, n = results["with systematics"][name], results["without"][name]
        print(f"{name:>22} {s[0.68]:10.4f} {s[0.95]:10.4f} {n[0.68]:10.4f} {n[0.95]:10.4f}")

    # 5. Fisher information at the SM, nuisances profiled: the areas of the 95% Cramér–Rao ellipses
    infos = {"truth": fisher_information(source, [0.0, 0.0], luminosity),
             "rate only": fisher_information(source, [0.0, 0.0], luminosity, "rate"),
             "histogram (m_ll, cos θ*)": fisher_information(source, [0.0, 0.0], luminosity, "histogram",
                                                            observables=(0, 1), bins=4),
             "sally": fisher_information(source, [0.0, 0.0], luminosity, "score", score=sally.score)}
    print("\nFisher information at the SM (nuisances profiled): area of the 95% Cramér–Rao ellipse")
    for name, info in infos.items():
        print(f"{name:>26} {ellipse_area(info):10.4f}")
    print(f"\nplot: {args.out / 'eft_limits.png'}\nfinished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
