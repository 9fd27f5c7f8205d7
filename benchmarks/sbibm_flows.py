"""Why goldmine's npe and nle trail sbi's NPE and NLE on sbibm's gaussian_linear and bernoulli_glm: flow or training.

Every variant trains a flow on the same N runs at θ ~ prior (sbi's design, `peers.prior_pairs`) of an sbibm task
(a black box around sbibm's simulator and prior, as in `benchmarks/sbibm.py`) and is scored twice:

- held out: its mean log density on `--test` fresh runs at θ ~ prior, log q(θ|x) for npe (the flow itself,
  before any restriction to the prior's support), log p̂(x|θ) for nle. Between two variants the difference is
  the difference of their E KL(p ‖ q) (npe: E_x KL(p(θ|x) ‖ q(θ|x)); nle: E_θ KL(p(x|θ) ‖ p̂(x|θ))), with no
  sampler involved. Where the task's density is known in closed form (gaussian_linear: prior N(0, 0.1·I),
  x|θ ~ N(θ, 0.1·I), so p(θ|x) = N(x/2, 0.05·I)) the exact mean is recorded too, and the difference is the KL.
- C2ST (as `benchmarks/sbibm.py`: sbibm's `c2st`, `--folds` folds, `--samples` draws against as many
  reference draws) of the posterior at sbibm's observations `--observations`: npe through
  `gm.inference.posterior` (direct draws), nle through it with goldmine's default sampler; sbi's variants
  through sbi's `build_posterior()`.

A variant is FAMILY:SURROGATE, the family npe or nle and the surrogate

    gm          goldmine's estimator with its defaults (`gm.PosteriorEstimator(prior=task prior)`,
                `gm.LikelihoodEstimator()`), as `gm.infer` builds them
    gm[k=v,..]  the same with options changed (e.g. gm[flow=maf,transforms=5,hidden=50x50]; sbi's schedule:
                gm[lr=0.0005,batch_size=200,epochs=1000,patience=20])
    sbi         sbi's NPE_C or NLE_A with its defaults (MAF, 5 transforms, 50 hidden, early stopping)

Usage (the bench venv, as `benchmarks/sbibm.py`):
    python benchmarks/sbibm_flows.py --task gaussian_linear --budget 1000 --variants npe:gm npe:sbi \
        "npe:gm[flow=maf]" --observations 1 2 3 --samples 500 --folds 2 --out benchmarks/results/sbibm_flows
    python benchmarks/sbibm_flows.py --report --out benchmarks/results/sbibm_flows

DIR/sbibm_flows.json is rewritten after every fit and entry; a rerun skips the finished ones. One torch thread.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
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
from sbibm import goldmine_simulator, need_sbibm  # noqa: E402  (benchmarks/sbibm.py)
from sbibm_nle import SbiLikelihood, parse_options, score_observation, variant_parser  # noqa: E402


def exact_log_density(task: str, family: str, theta, x):
    """The exact log q of the family's density at held-out runs, where the task has it in closed form; else None."""
    if task != "gaussian_linear":
        return None
    theta, x = theta.double(), x.double()
    d = theta.shape[1]
    if family == "npe":  # p(θ|x) = N(x/2, 0.05·I)
        mean, var, v = x / 2, 0.05, theta
    else:  # p(x|θ) = N(θ, 0.1·I)
        mean, var, v = theta, 0.1, x
    return float((-0.5 * ((v - mean) ** 2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)).mean())


def fit(family: str, name: str, prior, theta, x, seed: int):
    """(the trained surrogate, its held-out log density function (θ, x) → (n,), epochs trained)."""
    if name == "sbi":
        trainer, net = _fit("NPE_C" if family == "npe" else "NLE_A", theta, x, None, None, seed, None, prior=prior)
        epochs = trainer.summary["epochs_trained"][-1]
        if family == "npe":
            def log_q(t, x_):
                with torch.no_grad():
                    return net.log_prob(_f32(t)[None], condition=_f32(x_))[0].double()
        else:
            wrapped = SbiLikelihood(net, theta.shape[1], x.shape[1])

            def log_q(t, x_):
                return wrapped.log_likelihood_terms(x_, t)
        return (trainer, net), log_q, epochs
    options = parse_options(name[3:-1]) if name.startswith("gm[") else {}
    data = InMemoryData((theta.double(), x.double()))
    if family == "npe":
        est = gm.PosteriorEstimator(prior=prior, progress=False, seed=seed, **options).fit(data)

        def log_q(t, x_):
            with torch.no_grad():
                return est.network_(_f32(t), _f32(x_)).double()  # the flow itself, before the support's restriction
    else:
        est = gm.LikelihoodEstimator(progress=False, seed=seed, **options).fit(data)

        def log_q(t, x_):
            return est.log_prob(x_, t).double()
    history = getattr(est, "history_", {}) or {}
    return est, log_q, len(history.get("train_loss", [])) or None


def flow_of(model) -> str:
    """The flow a fitted surrogate uses: goldmine's `flow_` (the one flow="auto" chose), or sbi's MAF."""
    return getattr(model, "flow_", None) or "sbi maf"


def draws(family: str, name: str, model, sim, x_obs, n: int, seed: int):
    if name == "sbi":
        trainer, net = model
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
            torch.manual_seed(seed)
            posterior = trainer.build_posterior(net)
            return posterior.sample((n,), x=_f32(x_obs), show_progress_bars=False).double()
    post = gm.inference.posterior(model, x_obs, prior=None if family == "npe" else sim, progress=False, seed=seed)
    return post.sample(n, generator=torch.Generator().manual_seed(seed)).double()


def main(argv=None) -> None:
    parser = variant_parser(__doc__.split("\n")[0], "gaussian_linear", ["npe:gm", "npe:sbi", "nle:gm", "nle:sbi"], 1000,
                            [1, 2, 3], 500, 2, "sbibm_flows",
                            "sbibm's observations to sample and score; none: held-out log densities only")
    args = parser.parse_args(argv)
    path = args.out / "sbibm_flows.json"
    results = resume(path)
    results.setdefault("fits", [])
    if args.report:
        print(report(results["entries"], results["fits"]))
        return
    sbibm, c2st = need_sbibm()
    torch.set_num_threads(1)
    results["machine"] = machine_info()
    task = sbibm.get_task(args.task)
    sim = goldmine_simulator(task)
    prior = task.get_prior_dist()
    theta, x = prior_pairs(sim, args.budget, args.seed)
    theta_test, x_test = prior_pairs(sim, args.test, args.seed + 1)
    for variant in args.variants:
        family, name = variant.split(":", 1)
        key = (args.task, variant, args.budget, args.seed)
        todo = [k for k in args.observations if not any(
            (e["task"], e["variant"], e["budget"], e["seed"], e["observation"]) == (*key[:3], args.seed, k)
            and "c2st" in e for e in results["entries"])]
        fitted = any((f["task"], f["variant"], f["budget"], f["seed"]) == key for f in results["fits"])
        if fitted and not todo:
            continue
        start = time.time()
        model, log_q, epochs = fit(family, name, prior, theta, x, args.seed)
        fit_seconds = time.time() - start
        held_out = float(log_q(theta_test, x_test).mean())
        exact = exact_log_density(args.task, family, theta_test, x_test)
        print(f"{args.task} {variant} {args.budget}: {flow_of(model)}, fit {fit_seconds:.0f} s, epochs {epochs}, held-out "
              f"{held_out:.3f}" + (f" (exact {exact:.3f})" if exact is not None else ""), flush=True)
        record = {"task": args.task, "variant": variant, "budget": args.budget, "seed": args.seed, "epochs": epochs,
                  "flow": flow_of(model),
                  "fit_seconds": fit_seconds, "held_out_log_q": held_out, "exact_held_out_log_q": exact,
                  "kl": None if exact is None else exact - held_out, "test_runs": args.test}
        results["fits"] = [f for f in results["fits"] if (f["task"], f["variant"], f["budget"], f["seed"]) != key]
        results["fits"].append(record)
        write(results, path)
        for k in todo:
            value, seconds = score_observation(task, c2st, k, args.samples, args.folds,
                                               lambda x_obs: draws(family, name, model, sim, x_obs, args.samples,
                                                                   args.seed))
            results["entries"] = [e for e in results["entries"] if (e["task"], e["variant"], e["budget"], e["seed"],
                                                                    e["observation"]) != (*key, k)]
            results["entries"].append({**record, "observation": k, "c2st": value, "sample_seconds": seconds,
                                       "samples": args.samples, "folds": args.folds})
            results["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
            write(results, path)
    print(report(results["entries"], results["fits"]))


def report(entries, fits) -> str:
    lines = [f"{'task':>16} {'variant':>58} {'budget':>6} {'seed':>4} {'flow':>7} {'held-out':>9} {'KL':>7} {'epochs':>6} "
             f"{'fit s':>6}  C2ST per observation (mean)"]
    for f in sorted(fits, key=lambda f: (f["task"], f["budget"], f["variant"], f["seed"])):
        es = sorted((e for e in entries if (e["task"], e["variant"], e["budget"], e["seed"]) ==
                     (f["task"], f["variant"], f["budget"], f["seed"])), key=lambda e: e["observation"])
        c2sts = " ".join(f"{e['observation']}:{e['c2st']:.3f}" for e in es)
        mean = f" ({sum(e['c2st'] for e in es) / len(es):.3f})" if es else ""
        kl = "-" if f["kl"] is None else f"{f['kl']:.3f}"
        lines.append(f"{f['task']:>16} {f['variant']:>58} {f['budget']:>6} {f['seed']:>4} {f.get('flow', '-'):>7} "
                     f"{f['held_out_log_q']:>9.3f} "
                     f"{kl:>7} {str(f['epochs']):>6} {f['fit_seconds']:>6.0f}  {c2sts}{mean}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
