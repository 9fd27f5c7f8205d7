"""The sbi benchmark (sbibm): goldmine's npe, nle, nre (and gold, where the task has it) beside sbi's NPE, NLE, NRE.

Tasks (sbibm 1.1.0, its observations and reference posteriors): two_moons, slcp, gaussian_linear,
gaussian_mixture, bernoulli_glm. goldmine runs two_moons and slcp as its own built-in simulators
(`gm.simulators.TwoMoons`, `gm.simulators.SLCP`, the same programs with gold: the joint likelihood
ratio and score), the others as black boxes around sbibm's simulator (`gm.simulators.BlackBoxSimulator`
with sbibm's prior).

A budget N is simulator runs. goldmine draws its data set with `gm.simulate(sim, N, seed)` (half the
runs at θ ~ prior, half at θ_ref, the library's default design; npe trains on the N/2 runs at θ);
sbi gets N fresh runs at θ ~ prior (`benchmarks/peers.py`'s `prior_pairs`, sbi's own design). Every
method runs with its default settings: goldmine's posteriors through `gm.inference.posterior`
(npe: direct draws; nle, nre, alices, rascal, scandal: its default sampler); npe1 and snpe (nle1 and snle, nre1 and
snre) are npe (nle, nre) through `gm.infer` with every run at θ from the prior (npe1, nle1, nre1: one round) or from
the rounds' proposals (snpe, snle, snre: `--rounds` rounds, 3 by default, for the one observation,
`goldmine.sequential`), sbi's through `build_posterior()` (NPE: rejection in the prior's support; NLE_A and NRE_A:
sbi's default MCMC, slice_np_vectorized). sbi_snpe, sbi_snle and sbi_snre are sbi's sequential SNPE_C (APT),
SNLE_A and SNRE_A over the same rounds, each later round at θ from sbi's posterior of the round before.

The quality is sbibm's C2ST (`sbibm.metrics.c2st`: an MLP classifier, sbibm's own settings,
`--folds` stratified folds, 5 by default as in sbibm) between `--samples` posterior draws and as many
of sbibm's reference posterior draws, for observations 1..`--observations` (sbibm numbers them 1-10).
0.5 is a perfect posterior, 1 a useless one.

Usage (sbi and sbibm come with the `bench` extra, see benchmarks/README.md):
    python benchmarks/sbibm.py [--tasks two_moons ...] [--budgets 1000 ...] [--methods npe sbi_npe ...]
                               [--observations 10] [--samples 1000] [--folds 5] [--rounds 3] [--out DIR] [--report]

DIR/sbibm.json is rewritten after every entry (task, budget, method, observation); a rerun into the same
DIR skips the finished entries and retries the failed ones. DIR/sbibm.png shows the C2ST of every entry;
`--report` redraws it and the table from the JSON without running anything. It prints a table of the
mean C2ST over the observations per method (rows) and task × budget (columns), as in the sbibm paper.
torch runs on one thread.

References:
    Lueckmann, Boelts, Greenberg, Gonçalves, Macke, "Benchmarking simulation-based inference",
    AISTATS 2021, https://arxiv.org/abs/2101.04653
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.simulators.base import box_bounds  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from peers import _NoTracker, _fit, _f32, _sbi_inference, prior_pairs  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402

TASKS = ("two_moons", "slcp", "gaussian_linear", "gaussian_mixture", "bernoulli_glm")
BUDGETS = (1_000, 10_000, 100_000)
METHODS = ("npe", "nle", "nre", "alices", "rascal", "scandal", "npe1", "snpe", "nle1", "snle", "nre1", "snre",
           "sbi_npe", "sbi_nle", "sbi_nre", "sbi_snpe", "sbi_snle", "sbi_snre")
#: the methods run through `gm.infer`, every run at θ from the prior (one round) or the rounds' proposals
INFER = {"npe1": ("npe", 1), "snpe": ("npe", None), "nle1": ("nle", 1), "snle": ("nle", None), "nre1": ("nre", 1),
         "snre": ("nre", None)}
#: sbi's classes of its single-round and sequential peers
SBI = {"sbi_npe": "NPE_C", "sbi_nle": "NLE_A", "sbi_nre": "NRE_A", "sbi_snpe": "SNPE_C", "sbi_snle": "SNLE_A",
       "sbi_snre": "SNRE_A"}
#: the default rounds (`--rounds`) of the sequential methods (snpe, snle, snre and sbi's), the budget split evenly over them
ROUNDS = 3
BUILTIN = {"two_moons": "TwoMoons", "slcp": "SLCP"}
GOLD = ("alices", "rascal", "scandal")  # gold: ratio methods (log r and t) and a likelihood method (t only)


def need_sbibm():
    # this file is named sbibm.py too: import the package with the benchmarks folder off the path
    here = str(Path(__file__).resolve().parent)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    sys.modules.pop("sbibm", None)
    try:
        import sbibm
        from sbibm.metrics import c2st
    except ImportError as error:
        raise SystemExit(f"{error}: this benchmark needs sbi and sbibm: see benchmarks/README.md (sbibm).") from error
    finally:
        sys.path[:] = saved
    return sbibm, c2st


def goldmine_simulator(task):
    """The task as a goldmine simulator: a built-in with gold, or a black box around sbibm's simulator."""
    if task.name in BUILTIN:
        return getattr(gm.simulators, BUILTIN[task.name])()
    run = task.get_simulator()

    def fn(theta):
        return run(torch.as_tensor(theta, dtype=torch.float32)).double()

    return gm.simulators.BlackBoxSimulator(fn, task.get_prior_dist(), numpy=False, name=task.name)


def box(sim):
    low, high = box_bounds(sim.prior)
    if low is None:
        raise ValueError(f"{sim.name}'s prior is no box; the sbi peers here take a BoxUniform prior.")
    return low, high


def goldmine_draws(method, data, sim, x_obs, n, seed):
    if method == "npe":
        est = gm.PosteriorEstimator("npe").fit(data)
    elif method in ("nle", "scandal"):
        est = gm.LikelihoodEstimator(method).fit(data)
    else:
        est = gm.RatioEstimator(method).fit(data)
    post = gm.inference.posterior(est, x_obs, prior=None if method == "npe" else sim, progress=False, seed=seed)
    return post.sample(n, generator=torch.Generator().manual_seed(seed)), getattr(post, "sampler", "direct")


def infer_draws(method, sim, budget, x_obs, n, seed, cache=None, rounds=ROUNDS):
    """npe or nle through `gm.infer`, every run at θ from the prior or the round's proposal: one round (npe1,
    nle1) or `rounds` sequential rounds for this observation (snpe, snle, snre); the budget counts the runs of every
    round. One round does not depend on the observation (θ ~ prior, the same seed): its estimator is kept in
    `cache` and the next observation's posterior built from it as `gm.infer` builds it, instead of the same fit
    again."""
    name, one = INFER[method]
    rounds = one or rounds
    key = ("infer", sim.name, method, budget, seed)
    if rounds == 1 and cache is not None and key in cache:
        est = cache[key]
        post = (gm.inference.posterior(est, x_obs, prior=sim.prior, seed=seed) if name == "npe" else
                gm.inference.posterior(gm.inference.Model(est, prior=sim.prior), x_obs, seed=seed, progress=False))
    else:
        result = gm.infer(sim, sim.prior, x_obs, method=name, budget=budget, rounds=rounds, seed=seed, progress=False)
        est, post = result.estimator, result.posterior
        if rounds == 1 and cache is not None:
            cache[key] = est
    sampler = getattr(post, "sampler", "direct")
    flow = getattr(est, "flow_", None)  # the flow of npe and nle (flow="auto": the one fit chose)
    return (post.sample(n, generator=torch.Generator().manual_seed(seed)),
            f"{name}, {rounds} round(s), {sampler}" + (f", flow {flow}" if flow else ""))


def sbi_draws(method, sim, budget, x_obs, n, seed, prior=None):
    """sbi's method on N runs at θ ~ prior: a box prior as sbi's BoxUniform, any other as `prior` (the task's
    own float32 torch distribution, e.g. gaussian_linear's Gaussian)."""
    theta, x = prior_pairs(sim, budget, seed)
    low, high = box_bounds(sim.prior)
    if low is None and prior is None:
        raise ValueError(f"{sim.name}'s prior is no box: pass the task's prior to sbi_draws.")
    trainer, net = _fit(SBI[method], theta, x, low, high,
                        seed, None, prior=None if low is not None else prior)
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(seed)
        posterior = trainer.build_posterior(net)
        draws = posterior.sample((n,), x=_f32(x_obs), show_progress_bars=False)
    return draws.double(), "sbi default"


def sbi_sequential_draws(method, sim, budget, x_obs, n, seed, prior=None, rounds=ROUNDS):
    """sbi's sequential inference as its tutorial runs it: `rounds` rounds of budget/rounds runs, the first at θ ~ prior,
    each later one at θ from the last round's posterior at x_obs (`set_default_x`), one trainer appending every
    round's runs (SNPE_C with each round's proposal: APT's atomic loss), sbi's default training and sampling; every
    run of every round counts."""
    inference = _sbi_inference()
    from sbi.utils import BoxUniform

    low, high = box_bounds(sim.prior)
    x_o = _f32(x_obs).reshape(1, -1)
    generator = torch.Generator().manual_seed(10_000 + seed)
    sizes = [budget // rounds + (r < budget % rounds) for r in range(rounds)]
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(seed)
        sbi_prior = BoxUniform(low=_f32(low), high=_f32(high)) if low is not None else prior
        trainer = getattr(inference, SBI[method])(prior=sbi_prior, show_progress_bars=False, tracker=_NoTracker())
        proposal = sbi_prior
        for size in sizes:
            theta = proposal.sample((size,)).reshape(size, -1)
            x = sim.sample(theta.double(), generator=generator).x.float()
            extra = {"proposal": proposal} if method == "sbi_snpe" else {}
            net = trainer.append_simulations(theta, x, **extra).train()
            proposal = trainer.build_posterior(net).set_default_x(x_o)
        draws = proposal.sample((n,), show_progress_bars=False)
    return draws.double(), f"sbi default, {rounds} rounds"


def run_entry(sbibm, c2st, task_name, budget, method, k, args, cache):
    task = sbibm.get_task(task_name)
    sim = goldmine_simulator(task)
    x_obs = task.get_observation(k).double()
    reference = task.get_reference_posterior_samples(k)[:args.samples]
    start = time.time()
    if method.startswith("sbi_s"):
        draws, sampler = sbi_sequential_draws(method, sim, budget, x_obs, args.samples, args.seed, task.get_prior_dist(),
                                              args.rounds)
    elif method.startswith("sbi_"):
        draws, sampler = sbi_draws(method, sim, budget, x_obs, args.samples, args.seed, task.get_prior_dist())
    elif method in INFER:
        draws, sampler = infer_draws(method, sim, budget, x_obs, args.samples, args.seed, cache, args.rounds)
    else:
        if method in GOLD and not (task_name in BUILTIN):
            raise ValueError(f"{method} needs gold: {task_name} runs as a black box here")
        key = (task_name, budget)
        if key not in cache:
            cache[key] = gm.simulate(sim, budget, Path(cache["dir"]) / f"{task_name}_{budget}.h5", seed=args.seed,
                                     workers=1, progress=False)
        draws, sampler = goldmine_draws(method, cache[key], sim, x_obs, args.samples, args.seed)
    seconds = time.time() - start
    value = float(c2st(reference.float(), draws.float(), seed=1, n_folds=args.folds))
    return {"task": task_name, "budget": budget, "method": method, "observation": k, "c2st": value,
            "sampler": sampler, "seconds": seconds, "samples": args.samples, "folds": args.folds}


def table(entries, tasks, budgets, methods) -> str:
    cols = [(t, b) for t in tasks for b in budgets]
    head = f"{'method':>9} " + " ".join(f"{t[:10] + ' ' + format(b, '.0e'):>17}" for t, b in cols)
    lines = [head]
    for m in methods:
        cells = []
        for t, b in cols:
            vals = [e["c2st"] for e in entries if (e["task"], e["budget"], e["method"]) == (t, b, m) and "c2st" in e]
            cells.append(f"{sum(vals) / len(vals):.3f} ({len(vals)})" if vals else "-")
        lines.append(f"{m:>9} " + " ".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)


def twin(method: str) -> str:
    """sbi's method of the same family: sbi_npe for npe and npe1 (one round through `gm.infer`), and so on."""
    name, rounds = INFER.get(method, (method, 1))
    return f"sbi_{name}" if rounds == 1 else f"sbi_{method}"


def targets(entries) -> dict:
    """The issue's targets, from the mean C2ST over the observations run (the count beside it), where the
    run has what they need."""
    runs = {}
    for e in entries:
        if "c2st" in e:
            runs.setdefault((e["task"], e["budget"], e["method"]), []).append(e["c2st"])
    mean = {k: {"c2st": sum(v) / len(v), "observations": len(v)} for k, v in runs.items()}
    out = {}
    pairs = {f"{t} {b} {m}": {"goldmine": mean[t, b, m], "sbi": mean[t, b, twin(m)],
                              "met": mean[t, b, m]["c2st"] <= mean[t, b, twin(m)]["c2st"]}
             for (t, b, m) in mean if not m.startswith("sbi_") and (t, b, twin(m)) in mean}
    out["goldmine's C2ST no worse than sbi's, same family, every task and budget run"] = (
        {"met": all(p["met"] for p in pairs.values()), **pairs} if pairs else "not run: no method beside its sbi twin")
    nle = mean.get(("slcp", 10_000, "nle"))
    out["nle on slcp ≤ 0.80 at 10⁴ runs"] = {"met": nle["c2st"] <= 0.80, **nle} if nle else "not run"
    nle1 = mean.get(("slcp", 10_000, "nle1"))  # every run at θ ~ prior, as sbi's NLE gets them
    out["nle1 on slcp ≤ 0.80 at 10⁴ runs"] = {"met": nle1["c2st"] <= 0.80, **nle1} if nle1 else "not run"
    seq, single = mean.get(("slcp", 10_000, "snpe")), mean.get(("slcp", 100_000, "npe1"))
    out["sequential npe at 10⁴ runs on slcp below single-round npe at 10⁵"] = (
        {"met": seq["c2st"] < single["c2st"], "snpe@1e4": seq, "npe1@1e5": single} if seq and single
        else "not run: needs slcp snpe at 10⁴ and npe1 at 10⁵")
    spent = {f"{t} {b}": {"met": v["c2st"] <= mean[t, b, "sbi_npe"]["c2st"], "npe1": v, "sbi_npe": mean[t, b, "sbi_npe"]}
             for (t, b, m), v in mean.items() if m == "npe1" and (t, b, "sbi_npe") in mean}
    out["npe with every run at θ ~ prior (npe1) no worse than sbi's NPE at equal runs"] = (
        {"met": all(e["met"] for e in spent.values()), **spent} if spent else "not run: needs npe1 beside sbi_npe")
    gold = {f"two_moons {m}@{b} ≤ sbi_npe@{10 * b}": {"met": v["c2st"] <= mean[t, 10 * b, "sbi_npe"]["c2st"],
                                                     m: v, "sbi_npe": mean[t, 10 * b, "sbi_npe"]}
            for (t, b, m), v in mean.items() if t == "two_moons" and m in GOLD and (t, 10 * b, "sbi_npe") in mean}
    out["gold on two_moons at N reaches sbi's NPE at 10·N"] = (
        {"met": any(g["met"] for g in gold.values()), **gold} if gold else "not run: needs sbi_npe at 10·N")
    return out


def plot(entries, path: Path) -> Path:
    """C2ST per observation (dots) and their mean (a bar) of every (task, budget, method) in `entries`; PNG at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for e in entries:
        if "c2st" in e:
            runs.setdefault(f"{e['task']} {e['method']} {e['budget']:.0e}", []).append(e["c2st"])
    names = sorted(runs)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    for i, name in enumerate(names):
        values = runs[name]
        ax.barh(i, sum(values) / len(values) - 0.5, left=0.5, color="0.85")
        ax.plot(values, [i] * len(values), "o", color="C0")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("C2ST (0.5: the reference posterior); dots: observations, bar: their mean")
    ax.set_xlim(0.45, 1.0)
    ax.axvline(0.5, color="0.5", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--observations", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sbibm")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of the sequential methods, goldmine's and sbi's (in each entry's sampler)")
    parser.add_argument("--report", action="store_true", help="redraw the table and PNG from DIR/sbibm.json, no runs")
    args = parser.parse_args(argv)
    if args.report:
        entries = resume(args.out / "sbibm.json")["entries"]
        print(table(entries, args.tasks, args.budgets, args.methods))
        print(f"plot: {plot(entries, args.out / 'sbibm.png')}")
        return
    sbibm, c2st = need_sbibm()
    torch.set_num_threads(1)
    path = args.out / "sbibm.json"
    results = resume(path)
    results["machine"] = machine_info()
    results["settings"] = {"samples": args.samples, "folds": args.folds, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        cache = {"dir": tmp}
        for task_name in args.tasks:
            for budget in args.budgets:
                for method in args.methods:
                    for k in range(1, args.observations + 1):
                        key = (task_name, budget, method, k)
                        old = [e for e in results["entries"] if (e["task"], e["budget"], e["method"], e["observation"]) == key]
                        if old and "c2st" in old[0] and old[0]["samples"] == args.samples and old[0]["folds"] == args.folds:
                            continue
                        results["entries"] = [e for e in results["entries"] if e not in old]
                        try:
                            entry = run_entry(sbibm, c2st, task_name, budget, method, k, args, cache)
                            print(f"{task_name} {budget} {method} obs {k}: C2ST {entry['c2st']:.3f} "
                                  f"({entry['seconds']:.0f} s)", flush=True)
                        except Exception as error:  # noqa: BLE001 - a failed entry is recorded and retried next run
                            entry = {"task": task_name, "budget": budget, "method": method, "observation": k,
                                     "failed": f"{type(error).__name__}: {error}"[:300],
                                     "traceback": traceback.format_exc()[-2000:]}
                            print(f"{task_name} {budget} {method} obs {k}: FAILED {entry['failed']}", flush=True)
                        results["entries"].append(entry)
                        results["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
                        write(results, path)
    print(f"\nC2ST, mean over observations (count); {args.samples} draws against as many reference draws, "
          f"sbibm's c2st with {args.folds} folds")
    print(table(results["entries"], args.tasks, args.budgets, args.methods))
    results["targets"] = targets(results["entries"])
    write(results, path)
    plot(results["entries"], args.out / "sbibm.png")
    for k, v in results["targets"].items():
        print(f"target {k}: {v if isinstance(v, str) else v['met']}")


if __name__ == "__main__":
    main()
