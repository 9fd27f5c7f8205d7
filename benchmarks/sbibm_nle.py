"""Why goldmine's nle trails sbi's NLE on sbibm's slcp: the surrogate or the sampler, and which setting.

Every variant trains a likelihood surrogate p̂(x|θ) on the same N runs at θ ~ prior (sbi's design,
`peers.prior_pairs`) and draws the posterior of sbibm's observations with a sampler; C2ST as in
`benchmarks/sbibm.py` (sbibm's `c2st`, `--folds` folds, `--samples` draws against as many reference
draws). A variant is SURROGATE+SAMPLER:

    surrogates   exact      the task's exact likelihood (goldmine's `SLCP.log_prob`): the sampler's floor
                 gm         `gm.LikelihoodEstimator()` with its defaults (nle on data without runs at θ_ref)
                 gm[k=v,..] the same with options changed (e.g. gm[flow=maf,transforms=5,hidden=50x50]; the
                            former schedule: gm[lr=0.001,epochs=50,batch_size=None,patience=None])
                 sbi        sbi's NLE_A with its defaults (MAF, 5 transforms, 50 hidden, early stopping)
    samplers     gm         `gm.inference.posterior` with its defaults (the tempered sampler)
                 sbi        sbi's default MCMC (slice_np_vectorized, 20 chains, init by resampling)

Besides the C2ST, each trained surrogate's mean log p̂(x|θ) on `--test` held-out runs at θ ~ prior is
recorded beside the exact mean log p(x|θ): their difference estimates E_θ KL(p(·|θ) ‖ p̂(·|θ)), the
surrogate's error without any sampler.

Usage (the bench venv, as `benchmarks/sbibm.py`):
    python benchmarks/sbibm_nle.py --variants exact+gm gm+gm sbi+sbi sbi+gm --budget 10000 --observations 5 \
        --out benchmarks/results/sbibm_nle
    python benchmarks/sbibm_nle.py --report --out benchmarks/results/sbibm_nle

DIR/sbibm_nle.json is rewritten after every entry (variant, budget, observation); a rerun skips finished ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.memory import InMemoryData  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from peers import _f32, _fit, prior_pairs  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402
from sbibm import box, need_sbibm  # noqa: E402  (benchmarks/sbibm.py)


def parse_options(text: str) -> dict:
    """"flow=maf,transforms=5,hidden=50x50" → {"flow": "maf", "transforms": 5, "hidden": (50, 50)}."""
    options = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        if value == "None":
            options[key] = None
        elif "x" in value and value.replace("x", "").isdigit():
            options[key] = tuple(int(v) for v in value.split("x"))
        else:
            for cast in (int, float):
                try:
                    options[key] = cast(value)
                    break
                except ValueError:
                    continue
            else:
                options[key] = value
    return options


class SbiLikelihood:
    """sbi's trained NLE flow as a goldmine likelihood surrogate (`goldmine.inference.surrogate` protocol)."""

    kind = "likelihood"
    capabilities = frozenset({"likelihood"})

    def __init__(self, net, theta_dim: int, x_dim: int):
        self.net, self.theta_dim_, self.x_dim_ = net, theta_dim, x_dim

    @torch.no_grad()
    def log_likelihood_terms(self, x, theta):
        x, theta = _f32(x), _f32(theta).expand(len(x), -1) if len(theta) == 1 else _f32(theta)
        return self.net.log_prob(x[None], condition=theta)[0].double()


def surrogate(name: str, sim, theta, x, seed: int):
    """(surrogate for goldmine's sampler, its log p̂(x|θ) function, sbi's posterior builder or None, epochs)."""
    if name == "exact":
        return sim, lambda x_, t_: sim.log_prob(x_, t_), None, None
    if name == "sbi":
        low, high = box(sim)
        trainer, net = _fit("NLE_A", theta, x, low, high, seed, None)
        wrapped = SbiLikelihood(net, sim.theta_dim, sim.x_dim)
        return wrapped, wrapped.log_likelihood_terms, (trainer, net), trainer.summary["epochs_trained"][-1]
    options = parse_options(name[3:-1]) if name.startswith("gm[") else {}
    est = gm.LikelihoodEstimator(progress=False, seed=seed, **options).fit(InMemoryData((theta, x)))
    epochs = len(est.history_["train_loss"]) if hasattr(est, "history_") and "train_loss" in est.history_ else None
    return est, est.log_prob, None, epochs


def draws(sampler: str, model, sbi_parts, sim, x_obs, n: int, seed: int):
    if sampler == "gm":
        post = gm.inference.posterior(model, x_obs, prior=sim, progress=False, seed=seed)
        return post.sample(n, generator=torch.Generator().manual_seed(seed))
    if sbi_parts is None:
        raise ValueError("the sbi sampler runs on sbi's surrogate only (variant sbi+sbi)")
    trainer, net = sbi_parts
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(seed)
        posterior = trainer.build_posterior(net)
        return posterior.sample((n,), x=_f32(x_obs), show_progress_bars=False).double()


def variant_parser(description: str, task: str, variants: list, budget: int, observations: list, samples: int,
                   folds: int, out: str, help_obs: str) -> argparse.ArgumentParser:
    """The command line of the variant benchmarks (this one and sbibm_flows.py), with their own defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--task", default=task)
    parser.add_argument("--variants", nargs="+", default=variants)
    parser.add_argument("--budget", type=int, default=budget)
    parser.add_argument("--observations", type=int, nargs="*", default=observations, help=help_obs)
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument("--folds", type=int, default=folds)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / out)
    parser.add_argument("--report", action="store_true")
    return parser


def score_observation(task, c2st, k: int, samples: int, folds: int, draw) -> tuple[float, float]:
    """sbibm's C2ST of `draw(x_obs)` (samples posterior draws) against observation k's reference posterior, and the
    seconds the draws took; printed as it goes."""
    x_obs = task.get_observation(k).double()
    reference = task.get_reference_posterior_samples(k)[:samples]
    start = time.time()
    sample = draw(x_obs)
    seconds = time.time() - start
    value = float(c2st(reference.float(), sample.float(), seed=1, n_folds=folds))
    print(f"  obs {k}: C2ST {value:.3f} (sampling {seconds:.0f} s)", flush=True)
    return value, seconds


def main(argv=None) -> None:
    parser = variant_parser(__doc__.split("\n")[0], "slcp", ["exact+gm", "gm+gm", "sbi+sbi", "sbi+gm"], 10_000,
                            [1, 2, 3, 4, 5], 1000, 5, "sbibm_nle",
                            "sbibm's observations to sample and score; none: fit and score held-out runs only")
    args = parser.parse_args(argv)
    path = args.out / "sbibm_nle.json"
    results = resume(path)
    if args.report:
        print(report(results["entries"], results.get("fits", [])))
        return
    sbibm, c2st = need_sbibm()
    torch.set_num_threads(1)
    results["machine"] = machine_info()
    results.setdefault("fits", [])
    task = sbibm.get_task(args.task)
    sim = getattr(gm.simulators, {"slcp": "SLCP", "two_moons": "TwoMoons"}[args.task])()
    theta, x = prior_pairs(sim, args.budget, args.seed)
    theta_test, x_test = prior_pairs(sim, args.test, args.seed + 1)
    exact_test = float(sim.log_prob(x_test.double(), theta_test.double()).mean())
    for variant in args.variants:
        name, sampler = variant.rsplit("+", 1)
        todo = [k for k in args.observations if not any(
            (e["variant"], e["budget"], e["observation"]) == (variant, args.budget, k) and "c2st" in e
            for e in results["entries"])]
        fitted = any((f["variant"], f["budget"], f["seed"]) == (name, args.budget, args.seed) for f in results["fits"])
        if not todo and (fitted or sampler != "gm"):
            continue
        start = time.time()
        model, log_p, sbi_parts, epochs = surrogate(name, sim, theta, x, args.seed)
        fit_seconds = time.time() - start
        held_out = float(log_p(x_test, theta_test).double().mean())
        print(f"{variant} {args.budget}: fit {fit_seconds:.0f} s, epochs {epochs}, held-out log p̂ {held_out:.3f} "
              f"(exact {exact_test:.3f})", flush=True)
        results["fits"] = [f for f in results["fits"]
                           if (f["variant"], f["budget"], f["seed"]) != (name, args.budget, args.seed)]
        results["fits"].append({"variant": name, "budget": args.budget, "seed": args.seed, "epochs": epochs,
                                "fit_seconds": fit_seconds, "held_out_log_p": held_out,
                                "exact_held_out_log_p": exact_test, "kl_estimate": exact_test - held_out,
                                "test_runs": args.test})
        write(results, path)
        for k in todo:
            value, seconds = score_observation(task, c2st, k, args.samples, args.folds,
                                               lambda x_obs: draws(sampler, model, sbi_parts, sim, x_obs,
                                                                   args.samples, args.seed))
            results["entries"] = [e for e in results["entries"]
                                  if (e["variant"], e["budget"], e["observation"]) != (variant, args.budget, k)]
            results["entries"].append({
                "task": args.task, "variant": variant, "surrogate": name, "sampler": sampler, "budget": args.budget,
                "observation": k, "c2st": value, "fit_seconds": fit_seconds, "sample_seconds": seconds,
                "epochs": epochs, "held_out_log_p": held_out, "exact_held_out_log_p": exact_test,
                "kl_estimate": exact_test - held_out, "samples": args.samples, "folds": args.folds,
                "seed": args.seed})
            results["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
            write(results, path)
    print(report(results["entries"], results["fits"]))


def report(entries, fits) -> str:
    rows = {}
    for e in entries:
        rows.setdefault((e["variant"], e["budget"]), []).append(e)
    lines = [f"{'variant':>48} {'budget':>7} {'KL est.':>8} {'epochs':>6}  C2ST per observation (mean)"]
    for (variant, budget), es in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        es = sorted(es, key=lambda e: e["observation"])
        values = " ".join(f"{e['observation']}:{e['c2st']:.3f}" for e in es)
        mean = sum(e["c2st"] for e in es) / len(es)
        lines.append(f"{variant:>48} {budget:>7} {es[0]['kl_estimate']:>8.3f} {str(es[0]['epochs']):>6}  {values} "
                     f"({mean:.3f})")
    lines.append(f"\n{'surrogate':>48} {'budget':>7} {'seed':>4} {'KL est.':>8} {'epochs':>6} {'fit s':>6}")
    for f in sorted(fits, key=lambda f: (f["budget"], f["variant"], f["seed"])):
        lines.append(f"{f['variant']:>48} {f['budget']:>7} {f['seed']:>4} {f['kl_estimate']:>8.3f} "
                     f"{str(f['epochs']):>6} {f['fit_seconds']:>6.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
