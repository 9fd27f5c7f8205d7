"""From a simulator to the posterior of one observation, in one round or several (sequential inference).

A round simulates at θ from a proposal, fits an estimator on the runs of all rounds so far and turns
it into the posterior of the observation x_o, which proposes the θ of the next round. The first
round's proposal is the prior. A budget is simulator runs: it is split evenly over the rounds and
every run of every round counts.

- **npe, truncated (TSNPE).** Later rounds draw θ from the prior truncated to the region where the
  current q(θ|x_o) is highest, {θ: log q(θ|x_o) ≥ τ}, with τ the `TRUNCATION` quantile of log q
  under q itself (the region holds all but that mass of q), by rejection from the prior. On such
  proposals p̃(θ) ∝ p(θ)·1[θ ∈ region], the npe loss on all rounds' runs is minimised by a q whose
  posterior at x_o is the true one wherever the region holds it, so no atomic correction (APT) and
  no leakage follow. (Deistler, Goncalves, Macke, "Truncated proposals for scalable and hassle-free
  simulation-based inference", NeurIPS 2022, https://arxiv.org/abs/2210.04815.)
- **nle (SNLE).** Later rounds draw θ from the current posterior (MCMC on prior × p̂(x_o|θ)); the
  likelihood loss is minimised by p̂ = p whatever the θ it sees, so all rounds train one flow.
  (Papamakarios, Sterratt, Murray, arXiv:1805.07226.)
- **nre (SNRE).** Likewise; on θ from a proposal p̃ the classifier learns p(x|θ)/p̃(x), which is
  the likelihood up to a factor free of θ, so prior × r̂ stays the posterior. (Hermans, Begy,
  Louppe, arXiv:1903.04057; Durkan, Murray, Papamakarios, arXiv:2002.03712.) nres (nre + the score
  term) draws the same runs with their gold, as `simulate(..., layout="prior")` stores it (`prior_rows_at`):
  its score term's target t(x, z|θ) is unbiased for ∇_θ log p(x|θ) at any θ the proposal gives.

- **Gold and the other methods of the pair layout** (alices, rascal, scandal, carl, ...). A round
  draws its pairs as `goldmine.simulate` does, one run at θ_i and one at θ_ref per θ_i, with the
  joint ratio and scores at the pair's own θ_i, but θ_i from the proposal instead of the prior. Their
  losses are minimised by the true r(x|θ, θ_ref) (or p(x|θ)) at every θ they see, whatever the θ's
  distribution, so the runs of all rounds train one estimator and prior × r̂ is the posterior.

Each round's estimator is trained on all runs so far, with the estimator's default settings. For the methods
in `CONTINUE` (npe) a later round's network starts from the weights of the round before, as sbi's rounds do,
rather than from a fresh initialisation: the loss is the same one on more runs, so the last round's minimum is
a good start, and every round's epochs refine the one network instead of each round relearning it from
scratch (the standardisations of θ and x are fitted afresh on the runs so far). The measurement behind it
(SLCP, 10⁴ runs) is in benchmarks/README.md, "sbibm".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution
from tqdm.auto import tqdm

from . import checks
from .data import draw_block, draw_chunk, draw_prior_block
from .estimators.registry import get_method
from .executor import seeded_generator
from .inference import Model, posterior as make_posterior
from .memory import InMemoryData
from .simulators.base import DTYPE, Simulator, draw_prior, seed_from
from .simulators.priors import check_prior

#: the mass of q(θ|x_o) left outside the truncated region of a TSNPE round (the paper's is 1e-4; 1e-3 focuses the
#: rounds more and was better on SLCP: benchmarks/README.md, "sbibm")
TRUNCATION = 1e-3
#: draws of q(θ|x_o) behind the threshold τ
THRESHOLD_DRAWS = 20_000
#: prior draws tested per rejection batch, and the most tested in one round
REJECTION_BATCH, REJECTION_LIMIT = 100_000, 20_000_000
#: simulator runs per call of sim.sample
SIMULATE_ROWS = 4096
#: the methods whose later rounds start from the weights of the round before (as sbi's rounds do); the others
#: train afresh every round
CONTINUE = frozenset({"npe"})
#: the methods of sbi's sequential inference; rounds also take every ratio and likelihood method (gold too)
SEQUENTIAL_METHODS = ("npe", "nle", "nre")

__all__ = ["Inference", "SEQUENTIAL_METHODS", "run_rounds"]


@dataclass
class Inference:
    """The outcome of `goldmine.infer` (and of `run_rounds`): the posterior of one observation and how it was made.

    Attributes:
        posterior: the posterior of the last round (a `DirectPosterior` for npe, an MCMC `Posterior`
            otherwise), with `sample`, `log_prob` and `summary`.
        estimator: the estimator of the last round, fitted on the runs of every round.
        method: the method. x_obs: the observation(s). prior: the prior.
        simulations: simulator runs in total, over all rounds.
        rounds: one dict per round: round, runs, proposal ("prior", "truncated prior" or "posterior"),
            start (where the round's training started: "fresh" or "previous round's weights") and, for
            truncated rounds, the acceptance of the prior draws.
        data: the runs of every round, in memory.
    """

    posterior: object
    estimator: object
    method: str
    x_obs: Tensor
    prior: Distribution
    simulations: int
    rounds: list = field(default_factory=list)
    data: InMemoryData | None = field(default=None, repr=False)

    def sample(self, n, generator: torch.Generator | None = None) -> Tensor:
        """n draws of the posterior → (n, theta_dim) float64; n may be sbi's sample shape (n,)."""
        return self.posterior.sample(checks.sample_count(n), generator=generator)

    def log_prob(self, theta) -> Tensor:
        """The posterior's log-density at each row of θ (m, theta_dim) → (m,) float64 (normalised as the
        posterior's `normalised` says)."""
        return self.posterior.log_prob(theta)

    def summary(self) -> str:
        """The posterior's summary table, with the method, the rounds and the simulator runs spent."""
        spent = ", ".join(f"{r['runs']} ({r['proposal']})" for r in self.rounds)
        head = f"{self.method}: {self.simulations} simulator runs in {len(self.rounds)} round(s): {spent}"
        return head + "\n" + self.posterior.summary()

    def plot(self, path, truth=None, labels=None, n: int = 5000):
        """A corner plot of n posterior draws (PNG at `path`), with the true θ if given; returns the path."""
        from . import plots  # matplotlib only when plotting

        samples = self.posterior.samples
        if len(samples) > n:
            samples = samples[torch.randperm(len(samples), generator=torch.Generator().manual_seed(0))[:n]]
        return plots.corner({self.method: samples}, truth=truth, labels=labels, path=path)


def joint_draws(method: str) -> bool:
    """Whether `method` trains on runs at θ alone (npe, nre, nres, nle), so that all the budget is drawn at θ ~ proposal;
    else the data set's pair layout (half the runs at θ_ref, with gold) is drawn."""
    spec = get_method(method)
    return spec.label == 0 or (spec.family == "likelihood" and not spec.needs_gold)


def simulate_at(sim: Simulator, theta: Tensor, seed: int, progress: bool, desc: str) -> Tensor:
    """One run of `sim` at each row of θ (n, theta_dim), SIMULATE_ROWS at a time, call k from
    `seeded_generator(seed, k)` → x (n, x_dim) float64."""
    out = []
    bar = tqdm(total=len(theta), unit="runs", unit_scale=True, desc=desc, disable=not progress, dynamic_ncols=True)
    for k, lo in enumerate(range(0, len(theta), SIMULATE_ROWS)):
        part = theta[lo:lo + SIMULATE_ROWS]
        out.append(torch.as_tensor(sim.sample(part, generator=seeded_generator(seed, k)).x, dtype=DTYPE))
        bar.update(len(part))
    bar.close()
    return torch.cat(out)


def pair_rows(sim: Simulator, prior: Distribution, runs: int, seed: int) -> InMemoryData:
    """`runs` rows in the data set's pair layout (half at θ ~ prior, half at θ_ref, gold when the simulator has
    it), drawn as `goldmine.simulate` draws them, in memory."""
    if prior is not sim.prior:
        sim = copy.copy(sim)
        sim.prior = prior
    runs += runs % 2
    block = sim.block_size
    blocks = [(b, min(block, runs - b * block)) for b in range(-(-runs // block))]
    rows = draw_chunk(sim, sim.reference, seed, blocks)
    return InMemoryData({k: torch.from_numpy(v) for k, v in rows.items()}, reference=sim.reference,
                        name=f"the {runs} runs simulated in memory")


def _check_inside(prior: Distribution, theta: Tensor, what: str) -> None:
    inside = prior.support.check(theta)
    inside = inside.reshape(len(theta), -1).all(-1)
    if not bool(inside.all()):
        row = int((~inside).nonzero()[0, 0])
        raise ValueError(f"{what} drew θ = {theta[row].tolist()} outside the prior's support ({prior.support}): a "
                         "proposal must lie inside the prior's support (the posterior of another prior, or a "
                         "proposal that leaks). Restrict it to the support, or widen the prior.")


def truncated_prior(estimator, prior: Distribution, x_obs: Tensor, n: int, seed: int) -> tuple[Tensor, float]:
    """n draws of the prior restricted to {θ: log q(θ|x_o) ≥ τ} (TSNPE), by rejection; and the acceptance rate.

    Raises:
        RuntimeError: fewer than n accepted among REJECTION_LIMIT prior draws.
    """
    generator = torch.Generator().manual_seed(seed)
    q = estimator.sample(x_obs, THRESHOLD_DRAWS, generator=generator)
    tau = float(torch.quantile(estimator.log_prob(q, x_obs).double(), TRUNCATION))
    kept, drawn = [], 0
    while sum(len(k) for k in kept) < n and drawn < REJECTION_LIMIT:
        theta = draw_prior(prior, REJECTION_BATCH, seed=seed_from(generator))
        keep = (estimator.log_prob(theta, x_obs).double() >= tau).cpu()  # from the estimator's device
        kept.append(theta[keep])
        drawn += REJECTION_BATCH
    accepted = sum(len(k) for k in kept)
    if accepted < n:
        raise RuntimeError(f"the truncated prior kept {accepted} of {drawn} prior draws, fewer than the {n} runs of the "
                           "round: the posterior is far narrower than the prior. Use fewer rounds, nle or nre "
                           "(whose rounds sample the posterior by MCMC), or a narrower prior.")
    return torch.cat(kept)[:n], accepted / drawn


def _posterior(estimator, method: str, prior, x_obs, seed: int, progress: bool, mcmc: dict | None):
    if method == "npe" or "posterior" in getattr(estimator, "capabilities", ()):
        return make_posterior(estimator, x_obs, prior=prior, seed=seed)
    return make_posterior(Model(estimator, prior=prior), x_obs, seed=seed, progress=progress, **(mcmc or {}))


def run_rounds(sim: Simulator, prior: Distribution, x_obs: Tensor, method: str, budget: int, make_estimator,
               rounds: int = 1, seed: int = 0, proposal=None, progress: bool = True,
               mcmc: dict | None = None, device=None) -> Inference:
    """Simulates, fits and samples the posterior of x_obs in `rounds` rounds (module docstring).

    Arguments:
        sim: the simulator; prior: the prior (any torch distribution with log_prob and sample).
        x_obs: the observation, (1, x_dim) (for nle and nre also n i.i.d. ones, (n, x_dim)).
        method: a method of the registry; with rounds > 1 one of npe, nle, nre.
        budget: simulator runs in total, split evenly over the rounds.
        make_estimator: () → an unfitted estimator of `method`.
        rounds: the number of rounds.
        seed: seeds the draws of θ, the runs and the posteriors.
        proposal: the first round's proposal instead of the prior: a torch distribution, or anything
            with `sample(n)` such as the posterior of an earlier call; its draws must lie inside the
            prior's support. Not for npe, whose loss on θ ~ p̃ learns p̃(θ)·p(x|θ) instead of the posterior
            (no atomic correction here): its later rounds truncate the prior instead.
        progress: progress bars.
        mcmc: options of `goldmine.inference.posterior` for the MCMC posteriors of likelihood and ratio
            estimators (chains, warmup, steps, ...).
        device: where every round's estimator trains and computes (`goldmine.checks.device`); None: the CPU,
            and the estimator's `fit` is called without it.

    Raises:
        ValueError: rounds > 1 with another method, fewer than 2 runs per round, a proposal outside the
            prior's support, or a proposal other than the prior for npe.
        TypeError: a proposal that cannot draw (no `sample`).
    """
    rounds = checks.positive_int(rounds, "rounds")
    budget = checks.positive_int(budget, "budget")
    if rounds > 1 and get_method(method).family not in ("ratio", "likelihood") and method != "npe":
        raise ValueError(f"sequential rounds take npe and the ratio and likelihood methods (nle, nre, alices, "
                         f"scandal, ...), which learn the same surrogate from θ of any proposal; not {method}: run it "
                         "with rounds=1.")
    per_round = [budget // rounds + (r < budget % rounds) for r in range(rounds)]
    if min(per_round) < 20:
        raise ValueError(f"a budget of {budget} runs over {rounds} rounds leaves {min(per_round)} runs in a round: "
                         "give at least 20 per round.")
    prior = check_prior(prior, sim.theta_dim)
    _check_proposal(proposal, prior, method)
    thetas, xs, pairs, record = [], [], [], []
    estimator = post = None
    for r, runs in enumerate(per_round):
        if not joint_draws(method) and r == 0 and proposal is None:  # as goldmine.simulate draws a data set
            pairs.append(pair_rows(sim, prior, runs, seed))
            data = pairs[0]
            record.append({"round": 1, "runs": len(data), "proposal": "prior"})
        elif not joint_draws(method):  # pairs at θ_i from the proposal
            entry = {"round": r + 1, "runs": runs + runs % 2}
            pairs_n = entry["runs"] // 2  # one θ_i per pair
            theta = _draws(post, pairs_n, seed + r) if r else _proposal_draws(proposal, pairs_n, seed, sim.theta_dim)
            entry["proposal"] = "posterior" if r else "given proposal"
            _check_inside(prior, theta, "the proposal" if r == 0 else "the posterior of the last round")
            pairs.append(pair_rows_at(sim, theta, seed_from(torch.Generator().manual_seed(seed + 7919 * r))))
            record.append(entry)
            data = _concatenate(pairs, sim.reference)
        else:
            entry = {"round": r + 1, "runs": runs}
            if r == 0 and proposal is None:
                theta, entry["proposal"] = draw_prior(prior, runs, seed=seed), "prior"
            elif r == 0:
                theta, entry["proposal"] = _proposal_draws(proposal, runs, seed, sim.theta_dim), "given proposal"
                _check_inside(prior, theta, "the proposal")
            elif method == "npe":
                theta, entry["acceptance"] = truncated_prior(estimator, prior, x_obs, runs, seed + r)
                entry["proposal"] = "truncated prior"
            else:
                theta, entry["proposal"] = _draws(post, runs, seed + r), "posterior"
                _check_inside(prior, theta, "the posterior of the last round")
            record.append(entry)
            if get_method(method).needs_gold and sim.has_gold:  # nres: the runs at θ with their gold
                pairs.append(prior_rows_at(sim, theta, seed_from(torch.Generator().manual_seed(seed + 7919 * r))))
                data = _concatenate(pairs, sim.reference, group=1, seed=seed + r, rounds="round(s)")
            else:
                x = simulate_at(sim, theta, seed_from(torch.Generator().manual_seed(seed + 7919 * r)), progress,
                                f"simulate round {r + 1}/{rounds}" if rounds > 1 else "simulate")
                thetas.append(theta.to(DTYPE))
                xs.append(x)
                theta_all, x_all = torch.cat(thetas), torch.cat(xs)
                order = torch.randperm(len(theta_all), generator=torch.Generator().manual_seed(seed + r))
                data = InMemoryData((theta_all[order], x_all[order]),
                                    name=f"the {len(theta_all)} runs of rounds 1–{r + 1}")
        previous = estimator if method in CONTINUE else None
        record[-1]["start"] = "fresh" if previous is None else "previous round's weights"
        estimator = _fit_round(make_estimator, data, previous, device)
        post = _posterior(estimator, method, prior, x_obs, seed + r, progress, mcmc)
    return Inference(post, estimator, method, x_obs, prior, sum(e["runs"] for e in record), record, data)


def _fit_round(make_estimator, data, previous, device):
    """A fresh estimator of the round fitted on `data`; with `previous` its network starts from the previous
    round's weights (the standardisations are fitted afresh on the runs so far)."""
    estimator = make_estimator()
    if previous is not None:
        estimator.start_from(previous)
    return estimator.fit(data, **({} if device is None else {"device": device}))


def _check_proposal(proposal, prior: Distribution, method: str) -> None:
    """Refuses a proposal that cannot draw, and a proposal other than the prior for npe (see `run_rounds`)."""
    if proposal is None or proposal is prior:
        return
    if not callable(getattr(proposal, "sample", None)):
        raise TypeError(f"proposal ({type(proposal).__name__}) has no sample(n): give a torch distribution over θ, or "
                        "the posterior of an earlier call (anything with sample(n)), or leave proposal=None for the "
                        "prior.")
    if method == "npe":
        raise ValueError("npe trained on θ from a proposal p̃ learns p̃(θ)·p(x|θ), not the posterior under the prior "
                         "(goldmine has no atomic correction): leave proposal=None and use rounds= (later npe rounds "
                         "draw from the truncated prior), or pass the proposal with nle or nre, whose surrogates do "
                         "not depend on where θ was drawn.")


def _proposal_draws(proposal, n: int, seed: int, theta_dim: int) -> Tensor:
    """n draws of a user's proposal: a torch distribution (seeded) or anything with `sample(n)` → (n, theta_dim)."""
    draws = draw_prior(proposal, n, seed=seed) if isinstance(proposal, Distribution) else proposal.sample(n)
    return checks.rows(torch.as_tensor(draws, dtype=DTYPE), theta_dim, "the proposal's draws")


class _Given:
    """θ drawn beforehand, handed to `goldmine.data.draw_block` in place of its prior draws."""

    def __init__(self, theta: Tensor, support):
        self.theta, self.support, self.event_shape = theta, support, theta.shape[1:]

    def sample(self, shape=()):
        return self.theta


def pair_rows_at(sim: Simulator, theta: Tensor, seed: int) -> InMemoryData:
    """Rows in the data set's pair layout for given θ_i (n, theta_dim): a run at θ_i and one at θ_ref each, with
    gold at θ_i when the simulator has it (`goldmine.data.draw_block`, θ_i in place of prior draws) → 2n rows."""
    return _rows_at(sim, theta, seed, draw_block, 2 * len(theta))


def prior_rows_at(sim: Simulator, theta: Tensor, seed: int) -> InMemoryData:
    """Rows of the layout "prior" at given θ (n, theta_dim): one run at each θ_i with its gold (label 0),
    as `goldmine.simulate(..., layout="prior")` stores them (`goldmine.data.draw_prior_block`) → n rows."""
    return _rows_at(sim, theta, seed, draw_prior_block, len(theta))


def _rows_at(sim: Simulator, theta: Tensor, seed: int, draw, rows: int) -> InMemoryData:
    """`rows` rows of `draw` (a block drawer of goldmine.data) with θ_i in place of its prior draws."""
    given = copy.copy(sim)
    given.prior = _Given(theta, sim.prior.support)
    block = draw(given, rows, torch.Generator().manual_seed(seed), sim.reference)
    return InMemoryData({k: torch.from_numpy(v) for k, v in block.items()}, reference=sim.reference)


def _concatenate(parts: list[InMemoryData], reference: Tensor, group: int = 2, seed: int | None = None,
                 rounds: str = "rounds") -> InMemoryData:
    """The rows of several rounds in one row source, shuffled in whole groups of `group` rows (2: the pairs; the
    seed is then the number of pairs), so that validation mixes rounds."""
    fields = parts[0].fields
    rows = {k: torch.cat([p.tensors([k], dtype=DTYPE, drop_invalid=False)[k] for p in parts]) for k in fields}
    n_groups = len(rows["theta"]) // group
    order = torch.randperm(n_groups, generator=torch.Generator().manual_seed(n_groups if seed is None else seed))
    index = (group * order[:, None] + torch.arange(group)).reshape(-1)
    rows = {k: v[index] for k, v in rows.items()}
    return InMemoryData(rows, reference=reference, name=f"the {len(rows['theta'])} runs of {len(parts)} {rounds}")


def _draws(post, n: int, seed: int) -> Tensor:
    """n draws of a posterior: fresh ones when it can draw them (npe), else kept MCMC draws, resampled with
    replacement when the chains hold fewer than n."""
    generator = torch.Generator().manual_seed(seed)
    samples = post.samples
    if len(samples) >= n:
        return samples[torch.randperm(len(samples), generator=generator)[:n]]
    return samples[torch.randint(len(samples), (n,), generator=generator)]


__all__ += ["joint_draws", "pair_rows", "prior_rows_at", "simulate_at", "truncated_prior"]
