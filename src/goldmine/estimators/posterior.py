"""Neural posterior estimation with a conditional normalising flow: npe.

A flow q(θ|x) is trained on the runs drawn at θ (label 0), i.e. on pairs (θ, x) from the joint
p(θ) p(x|θ):

    npe        E_{p(θ, x)}[−log q(θ|x)],  minimised by q(θ|x) = p(θ|x)

(it is E_x KL(p(θ|x) ‖ q(θ|x)) up to a constant). One network then serves the posterior of every
observation without further simulation (amortisation).

The flow sees standardised v = (θ − m)/s with x as its context, so log q(θ|x) = log q_v(v|x) −
Σ_j log s_j. Its support is all of R^d, while a uniform prior's is the box B = [low, high]: the
estimator serves the flow restricted to the box,

    q_B(θ|x) = q(θ|x) · 1[θ ∈ B] / Z(x),    Z(x) = ∫_B q(θ|x) dθ,

sampled by rejection (draws outside B are redrawn; the acceptance rate estimates Z(x)) and with
Z(x) estimated for `log_prob` from `LEAKAGE_DRAWS` draws of q(·|x) (the "leakage correction" of
sbi), cached per observation. For a uniform prior, restricting the posterior to a narrower box is
exact: p(θ|x) ∝ p(x|θ) on B.

The box is the constructor's `prior` = (low, high), or the support of any torch prior given there
(one interval per θ dimension, ±∞ where unbounded: a Gaussian prior restricts nothing, a
log-normal one keeps θ > 0; `goldmine.simulators.priors.support_bounds`), or by default the
smallest box holding the θ of the training rows: for a uniform prior it falls inside the true box by
about its width over the number of rows. Only the support matters: the flow learns the prior's
shape from the training θ, which must be drawn from it. x may be discrete (e.g. the Galton slot): it is only the flow's context.

The flow is chosen by held-out likelihood (flow="auto", the default): a spline flow (nsf) and an affine one (maf,
sbi's default family, with tanh as sbi's) are both trained, and the one of the lower validation loss is kept. The
validation loss is the mean −log q(θ|x) over held-out rows of the joint, which is E_x KL(p(θ|x) ‖ q(θ|x)) plus a
constant the same for both, so the rule keeps the flow closer to the posterior in that sense. An affine flow holds
every conditional Gaussian (a linear-Gaussian model's posterior, and nearly that of a GLM under a Gaussian prior),
which the splines must learn; the splines learn a box prior's edges and several modes, which the affine flow
cannot. Each flow trains to convergence (`CONVERGE`, as sbi's NPE: lr 5e-4, batches of 200, early stopping
after 20 epochs without a better validation loss, the best epoch's weights). The measurements behind both are
in benchmarks/README.md ("sbibm", "npe and nle against sbi on gaussian_linear and bernoulli_glm").

References:
    Papamakarios, Murray, "Fast ε-free inference of simulation models with Bayesian conditional
    density estimation", NeurIPS 2016, https://arxiv.org/abs/1605.06376
    Greenberg, Nonnenmacher, Macke, "Automatic posterior transformation for likelihood-free
    inference", ICML 2019, https://arxiv.org/abs/1905.07488 (leakage outside the prior's support)
    Durkan, Bekasov, Murray, Papamakarios, "Neural spline flows", https://arxiv.org/abs/1906.04032
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from .. import checks, losses
from ..data import Dataset
from ..embeddings import embedding_record, embedding_spec, x_input
from ..memory import as_data
from ..nn import ConditionalFlow, check_flow_settings, flow_activation, flow_hidden
from ..simulators.base import box_prior
from ..simulators.priors import check_prior, support_bounds
from ..training import Trainer
from .base import Estimator, register
from .flow_choice import FlowChoice
from .registry import Method, family_method, register_method

LEAKAGE_DRAWS = 10_000  # draws of q(·|x) behind Z(x): standard error ≤ 0.005
LEAKAGE_SEED = 2**31 - 1  # fixed, so that log_prob is deterministic; unlike the small seeds users give sample
WARN_ACCEPTANCE = 0.01  # warn below this acceptance rate, as sbi does
MIN_ACCEPTANCE = 1e-4  # give up below this rate once GIVE_UP_DRAWS draws have been made
GIVE_UP_DRAWS = 100_000
MAX_ROUND_DRAWS = 2**17  # bounds the memory of one rejection round
MAX_ROUNDS = 100
#: npe's training: to convergence, as sbi's NPE trains (lr 5e-4, batches of 200, early stopping after 20 epochs
#: without a better validation loss, the best epoch's weights); the settings the user gives win
CONVERGE = {"epochs": 1000, "patience": 20, "lr": 5e-4, "batch_size": 200}
__all__ = ["PosteriorEstimator"]


class PosteriorNetwork(ConditionalFlow):
    """log q(θ|x) of raw θ: the conditional flow of θ given x (`theta_norm`, `x_norm`, `flow`), θ_ref and
    the box [low, high]. `forward(θ, x)` is the unrestricted flow's log q(θ|x), `sample(x)` one draw of
    it per row of x."""

    def __init__(self, theta_dim: int, x_dim: int, reference: Tensor, flow: str, transforms: int, hidden,
                 bins: int, activation: str, embedding=None, x_shape=None):
        context = None if embedding is None else x_input(embedding, x_dim, x_shape)
        super().__init__(theta_dim, x_dim, flow, transforms, hidden, bins, activation, names=("theta", "x"),
                         context=context, c_shape=x_shape)
        self.register_buffer("reference", reference.float().reshape(1, -1))
        self.register_buffer("low", torch.full((theta_dim,), -math.inf))
        self.register_buffer("high", torch.full((theta_dim,), math.inf))

    def inside(self, theta: Tensor) -> Tensor:
        """Whether each row lies in the box [low, high]: (n, theta_dim) → (n,) bool."""
        return ((theta >= self.low) & (theta <= self.high)).all(dim=1)


@register
class PosteriorEstimator(FlowChoice, Estimator):
    """A neural estimator of the posterior p(θ|x), trained by npe and restricted to the prior's support.

    A direct posterior, not a likelihood (the "posterior" capability of `goldmine.inference.surrogate`):
    `goldmine.inference.posterior(est, x_obs)` samples it, `gm.inference.Model` does not take it.

    Arguments:
        method: npe.
        prior: the prior the training θ were drawn from: any torch distribution with `log_prob` and
            `sample` (or a simulator, for its prior), whose support the posterior is restricted to;
            or a box (low, high), one bound per θ dimension (None or ±inf where unbounded). By
            default the smallest box holding the training rows' θ.
        flow: auto (the default), nsf (rational-quadratic splines) or maf (affine autoregressive). auto trains
            both and keeps the one of the lower validation loss, −log q(θ|x) on held-out rows (`fit`): an affine
            flow holds a conditional Gaussian (sbibm's gaussian_linear, nearly bernoulli_glm), the splines learn
            a box prior's edges and several modes (two_moons, slcp); measured in benchmarks/README.md, "sbibm".
        transforms: the number of flow transformations.
        hidden: the widths of the hidden layers of each transformation's network (`hidden_features`,
            its former name, is still accepted).
        bins: the number of spline bins (nsf).
        activation: the activation of the flow's networks (silu, tanh, elu, gelu, softplus). None (the default):
            silu, and tanh for auto's maf (as sbi's MAF).
        embedding: a network that summarises x into the flow's context, trained with it: a built-in by name or
            a dict of its name and settings, or a torch.nn.Module (`goldmine.embeddings`); None: x itself.
        **training: settings of the `goldmine.training.Trainer` (epochs, batch_size, lr, seed, ...); those not
            given default to training to convergence, `CONVERGE` (lr 5e-4, batches of 200, early stopping after 20
            epochs without a better validation loss, at most 1000 epochs).

    Raises:
        ValueError: an option of the wrong type or out of its range, naming it (here, not at fit time).

    Attributes:
        acceptance_: the fraction of the flow's draws inside the box in the last call of `sample`.
        flow_: the flow fitted (nsf or maf; with flow="auto" the one `fit` chose).

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> data = gm.simulate(gm.simulators.Weinberg(), 2000, os.path.join(tempfile.mkdtemp(), "w.h5"),
        ...                    layout="prior", progress=False)  # every run at θ ~ prior: npe reads them all
        >>> est = PosteriorEstimator(prior=([40, 0.5], [50, 1.2]), epochs=2, progress=False).fit(data)
        >>> est.sample(torch.tensor([0.3]), 5).shape
        torch.Size([5, 2])
        >>> est.log_prob(torch.tensor([[45.0, 0.8], [39.0, 0.8]]), torch.tensor([0.3]))[1]
        tensor(-inf)
    """

    kind = "posterior"
    capabilities = frozenset({"posterior"})
    _flow_state = ("_log_mass",)  # Z(x) belongs to the network fitted

    #: lr 1e-3 and batches of at least 128 rows, the settings of the flows' benchmarks
    TRAINING_DEFAULTS = {"lr": 1e-3, "min_batch_size": 128}

    def __init__(self, method: str = "npe", prior=None, flow: str = "auto", transforms: int = 3,
                 hidden=(64, 64), bins: int = 8, activation: str | None = None, embedding=None, **training):
        family_method("posterior", method, "PosteriorEstimator")
        self.embedding = embedding_spec(embedding)
        check_flow_settings(flow, activation, transforms=transforms, bins=bins)
        hidden = flow_hidden(hidden, training, (64, 64))
        box = None if prior is None else _check_box(prior)
        given = getattr(prior, "prior", prior)  # a simulator stands for its prior
        self._prior = given if isinstance(given, Distribution) else None
        self.given_training = frozenset(training)  # the Trainer settings the user chose (CONVERGE leaves them)
        super().__init__(**training)
        self.method, self.prior, self.flow, self.transforms = method, prior, flow, transforms
        self.flow_: str | None = None if flow == "auto" else flow  # the flow fitted (auto: chosen by fit)
        self.hidden, self.bins, self.activation = hidden, bins, activation
        self.params = {"method": method, "prior": box, "flow": flow, "transforms": transforms,
                       "hidden": list(hidden), "bins": bins, "activation": activation}
        if self.embedding is not None:
            self.params["embedding"] = embedding_record(self.embedding)
        self.acceptance_: float | None = None
        self._log_mass: dict[tuple, float] = {}

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        self._log_mass = {}  # Z(x) belongs to one network
        return PosteriorNetwork(theta_dim, x_dim, self.reference_, self.flow_, self.transforms, self.hidden,
                                self.bins, flow_activation(self.flow, self.flow_, self.activation), self.embedding,
                                self.x_shape_)

    def fit(self, data: Dataset | str, device=None) -> "PosteriorEstimator":
        """Trains on the rows drawn at θ (label 0) and returns self.

        With flow="auto" (the default) it trains each flow of `goldmine.nn.AUTO_FLOWS` and keeps the one of the
        lower validation loss (`flow_` names it). The training runs to convergence (`CONVERGE`) unless the
        user set these settings.

        Arguments:
            data: the rows (a Dataset, its path, or tensors in memory, `goldmine.memory.as_data`).
            device: where to train and then compute (`goldmine.checks.device`): None or "cpu" (the default),
                "cuda", "mps", a torch.device, or "auto" (an accelerator when present).

        Raises:
            ValueError: the prior's box has another dimension than the data's θ.
        """
        data = as_data(data)
        box = self.params["prior"]
        if box is not None and len(box[0]) != data.theta_dim:
            raise ValueError(f"prior has {len(box[0])} dimensions, but the θ of {data.path} have "
                             f"{data.theta_dim}: give one (low, high) bound per θ dimension.")
        self._fit_flows(lambda: self._fit_flow(data, box, device))
        return self

    def _fit_flow(self, data, box, device) -> None:
        """One fit of the flow `flow_`: network_ and history_."""
        spec = family_method("posterior", self.method, "PosteriorEstimator")
        fields = spec.fields
        self.trainer = dataclasses.replace(Trainer(**self.training), **{k: v for k, v in CONVERGE.items()
                                                                         if k not in self.given_training})
        data = self._setup(data, fields + ("label",), self.method)
        network = self.network_
        train, _ = data.split(self.trainer.validation)
        network.x_norm.fit(b["x"] for b in train.batches(train.scan_rows(), ["x"], label=0, shuffle=False))
        network.theta_norm.fit(b["theta"] for b in train.batches(65536, ["theta"], label=0, shuffle=False))
        if box is None:
            theta = torch.cat([b["theta"] for b in data.batches(65536, ["theta"], label=0, shuffle=False)])
            box = (theta.amin(0), theta.amax(0))
        network.low.copy_(_bound(box[0], -math.inf))
        network.high.copy_(_bound(box[1], math.inf))

        def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
            return spec.loss(net(batch["theta"], batch["x"])).mean()

        self._train(loss, data, fields, label=spec.label, device=device)

    @property
    def prior_(self):
        """The prior the posterior is restricted to: the torch distribution given as `prior`, else the box as a
        uniform distribution (float64), or None when the box is unbounded (a loaded model of a Gaussian prior)."""
        net = self._check_fitted()
        if self._prior is not None:
            return self._prior
        if not (torch.isfinite(net.low).all() and torch.isfinite(net.high).all()):
            return None
        return box_prior(net.low.double().cpu(), net.high.double().cpu())

    def _check_x(self, x) -> Tensor:
        """x as flat rows (n, x_dim): the flow reads its context flat and reshapes it for an embedding."""
        x = super()._check_x(x)
        return x.reshape(len(x), self.x_dim_)

    def _check_one_x(self, x) -> Tensor:
        if len(self.x_shape_ or ()) > 1:  # an image, a series: one x (x_shape), or one row of it
            x = self._check_x(x)
            if len(x) != 1:
                raise ValueError(f"x must be one observation of shape (1, {', '.join(map(str, self.x_shape_))}); "
                                 f"got {len(x)}.")
            return x
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim == 1 and x.shape[0] == self.x_dim_:
            x = x[None]
        if x.ndim != 2 or x.shape != (1, self.x_dim_):
            raise ValueError(f"x must be one observation of shape (1, {self.x_dim_}) or ({self.x_dim_},); "
                             f"got {tuple(x.shape)}.")
        return self._check_x(x)

    def sample(self, *args, x=None, n=None, generator: torch.Generator | None = None) -> Tensor:
        """n draws of the posterior restricted to the box, for one observation x: (1, x_dim) → (n, theta_dim).

        Called as ``sample(x, n)`` or, as in sbi, ``sample((n,), x=x)``; n may be a sample shape (n,).
        Draws outside the box are redrawn; the fraction kept is stored in `acceptance_` (a warning
        below 1%).

        Raises:
            RuntimeError: almost no draw falls inside the box (acceptance below 1e-4 after 10⁵ draws),
                or n draws were not collected in 100 rounds.
        """
        x, n, generator = _sample_arguments(args, x, n, generator)
        net = self._check_fitted()
        x = self._check_one_x(x)
        n = checks.sample_count(n, "n")
        kept, drawn, accepted, size = [], 0, 0, n
        for _ in range(MAX_ROUNDS):
            theta = net.sample(x.expand(size, -1), generator)
            inside = net.inside(theta)
            kept.append(theta[inside])
            drawn, accepted = drawn + size, accepted + int(inside.sum())
            if accepted >= n or (drawn >= GIVE_UP_DRAWS and accepted < MIN_ACCEPTANCE * drawn):
                break
            rate = max(accepted, 1) / drawn
            size = min(MAX_ROUND_DRAWS, math.ceil(1.2 * (n - accepted) / rate) + 16)
        self.acceptance_ = accepted / drawn
        if accepted < n:
            raise RuntimeError(
                f"only {accepted} of {drawn} draws of q(θ|x) fell inside the prior's box (low={_show(net.low)}, "
                f"high={_show(net.high)}), fewer than the n={n} asked: the flow puts almost all its mass "
                "outside the box for this x. Check that x resembles the training data and that the box "
                "covers the θ the data were simulated at, or train longer."
            )
        if self.acceptance_ < WARN_ACCEPTANCE:
            warnings.warn(
                f"only {self.acceptance_:.2%} of the draws of q(θ|x) fell inside the prior's box: the flow leaks "
                "most of its mass outside the prior's support for this x, which makes sampling slow and hints at "
                "a poor fit (or an x unlike the training data).", RuntimeWarning, stacklevel=2)
        return torch.cat(kept)[:n]

    def _log_z(self, x: Tensor) -> float:
        """log Z(x), the flow's mass inside the box, from LEAKAGE_DRAWS seeded draws, cached per x (1, x_dim)."""
        key = tuple(x[0].tolist())
        if key not in self._log_mass:
            net = self.network_
            theta = net.sample(x.expand(LEAKAGE_DRAWS, -1), torch.Generator().manual_seed(LEAKAGE_SEED))
            inside = int(net.inside(theta).sum())
            if inside == 0:
                raise RuntimeError(
                    f"none of {LEAKAGE_DRAWS} draws of q(θ|x) fell inside the prior's box for x = {list(key)}: "
                    "the flow's mass inside the box cannot be estimated. Check that x resembles the training data.")
            self._log_mass[key] = math.log(inside / LEAKAGE_DRAWS)
        return self._log_mass[key]

    def log_prob(self, theta, x) -> Tensor:
        """log q_B(θ|x) = log q(θ|x) − log Z(x) inside the box, −∞ outside.

        Arguments:
            theta: (n, theta_dim), or one point (theta_dim,) or (1, theta_dim).
            x: one observation per row of θ (n, x_dim), or one for all: (1, x_dim) or (x_dim,).

        Returns:
            (n,) float32; Z(x) is estimated once per distinct x (see the module docstring).
        """
        net = self._check_fitted()
        theta = torch.as_tensor(theta, dtype=torch.float32)
        if theta.ndim == 1:
            theta = theta[None] if theta.shape[0] == self.theta_dim_ and self.theta_dim_ > 1 else theta[:, None]
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim == 1 and x.shape[0] == self.x_dim_ and self.x_dim_ > 1:
            x = x[None]
        x = self._check_x(x)
        n = max(len(theta), len(x)) if theta.ndim == 2 else 0
        if theta.ndim != 2 or theta.shape[1] != self.theta_dim_ or {len(theta), len(x)} - {1, n}:
            raise ValueError(
                f"theta has shape {tuple(theta.shape)} and x has shape {tuple(x.shape)}: give θ (n, "
                f"{self.theta_dim_}) and x (n, {self.x_dim_}), or one of them as a single row."
            )
        if not torch.isfinite(theta).all():
            raise ValueError("theta holds NaN or infinite values.")
        theta, x = self._on_device(theta).expand(n, -1), x.expand(n, -1)
        with torch.no_grad():
            rows, index = torch.unique(x, dim=0, return_inverse=True)
            log_z = torch.tensor([self._log_z(row[None]) for row in rows], device=x.device)[index]
            log_q = net(theta, x) - log_z
        return torch.where(net.inside(theta), log_q, torch.full_like(log_q, -math.inf))


def _sample_arguments(args: tuple, x, n, generator):
    """(x, n, generator) of `sample(x, n, generator)` or of sbi's `sample(sample_shape, x=x)`."""
    args = list(args)
    if x is None:
        if not args:
            raise TypeError("sample needs the observation x: sample(x, n) or sample((n,), x=x).")
        x = args.pop(0)
    if n is None:
        if not args:
            raise TypeError("sample needs the number of draws n: sample(x, n) or sample((n,), x=x).")
        n = args.pop(0)
    if args and generator is None:
        generator = args.pop(0)
    if args:
        raise TypeError(f"sample takes x, n and generator; got {len(args)} more positional arguments.")
    return x, n, generator


def _show(bounds: Tensor) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in bounds.tolist()) + "]"


def _bound(values, infinite: float) -> Tensor:
    """A stored bound (a list with None where unbounded) as a float tensor."""
    if isinstance(values, Tensor):
        return values.float()
    return torch.tensor([infinite if v is None else float(v) for v in values])


def _check_box(prior) -> list[list[float | None]]:
    """(low, high), a torch prior or a simulator → two lists of floats (None where unbounded), low < high in
    every dimension."""
    prior = getattr(prior, "prior", prior)  # a simulator stands for its prior
    if isinstance(prior, Distribution) or callable(getattr(prior, "log_prob", None)):
        check_prior(prior)
        prior = support_bounds(prior)
    try:
        low, high = prior
        low = torch.as_tensor([-math.inf if v is None else v for v in low] if isinstance(low, (list, tuple)) else low,
                              dtype=torch.float64).reshape(-1)
        high = torch.as_tensor([math.inf if v is None else v for v in high] if isinstance(high, (list, tuple))
                               else high, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"prior must be a box (low, high) of two lists of bounds, one per θ dimension; "
                         f"got {prior!r}.") from None
    if low.shape != high.shape or len(low) == 0:
        raise ValueError(f"prior's low and high must have one bound per θ dimension each; got {len(low)} lows "
                         f"and {len(high)} highs.")
    if not ((low < high).all() and (low < math.inf).all() and (high > -math.inf).all()):
        raise ValueError(f"prior must have bounds with low < high in every dimension; got low="
                         f"{low.tolist()}, high={high.tolist()}.")
    return [[v if math.isfinite(v) else None for v in low.tolist()], [v if math.isfinite(v) else None
                                                                      for v in high.tolist()]]


register_method(Method("npe", "posterior", PosteriorEstimator, "flow q(θ|x), restricted to the prior's support",
                       "Papamakarios, Murray, arXiv:1605.06376", fields=("theta", "x"), label=0, loss=losses.npe))
