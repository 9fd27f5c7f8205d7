"""Neural likelihood estimation with a conditional normalising flow: nle and scandal.

A flow p̂(x|θ) is trained on every run: rows drawn at θ ~ prior (label 0) as pairs (θ, x), rows
drawn at θ_ref (label 1) as pairs (θ_ref, x) with the joint score at θ_ref; both terms below are
minimised by the true likelihood whatever the distribution of θ, so the whole budget counts:

    nle        E[−log p̂(x|θ)],  minimised by p̂ = p (it is E_θ KL(p ‖ p̂) up to a constant)
    scandal    E[−log p̂(x|θ) + α·‖∇_θ log p̂(x|θ) − t(x, z|θ)‖²]

Since E[t(x, z|θ)|x, θ] = ∇_θ log p(x|θ), the score term is minimised by the true likelihood too;
it tells the flow, from every run, how the density moves with θ. ∇_θ is taken with respect to the
flow's θ context by autograd inside the loss (double backward).

The flow sees standardised u = (x − m)/s and θ, so log p̂(x|θ) = log q(u|θ) − Σ_j log s_j. The
default architecture is a neural spline flow (monotone rational-quadratic splines): with
one-dimensional x an affine autoregressive flow (maf) is only a conditional Gaussian.

On small budgets maximum likelihood overfits: each θ ~ prior comes with a single x, and the flow
learns p̂(x|θ_i) peaked near x_i long before the validation loss notices. That barely moves the density
(KL) but roughens log p̂(x|θ) − log p̂(x|θ_ref). nle therefore trains with noise regularisation
(Rothfuss et al. 2019): every batch sees x + h·s·ε, ε ~ N(0, 1), s the spread of x at θ_ref
(`kernel_scale`), which is maximum likelihood for p(x|θ) smoothed in x by a Gaussian kernel. The kernel is
the same at θ and θ_ref, so its bias largely cancels in the ratio. The default bandwidth follows the
kernel-density rate in d = d_x + d_θ dimensions, so the smoothing bias vanishes as the budget grows:

    h = 0.2·(n/1000)^(−1/(4 + d)),    n the number of training rows.

Data without runs at θ_ref (the layout "prior", every run at θ ~ prior, as `goldmine.infer` draws them)
give no spread of p(x|θ_ref) to measure the kernel in, and the marginal spread of x, which includes how
far θ moves x, is many times wider where θ moves x far (as on SLCP): the default there is no noise (the
measurement on SLCP is in benchmarks/README.md, "sbibm").

Without the noise, the schedule of the pair layout (50 epochs on a cosine) stops far short of
convergence on a density of several dimensions (on SLCP's 8-D x it ended far from sbi's held-out KL:
benchmarks/README.md, "sbibm").
On those data (no runs at θ_ref, no noise, nle, continuous x of more than one dimension) the default
training runs to convergence as sbi's NLE trains: lr 5e-4, batches of 200, up to 1000 epochs, early
stopping after 20 epochs without a better validation loss, keeping the best epoch's weights (`CONVERGE`;
any of them given by the user wins). There the default flow="auto" trains the affine flow (maf, tanh as sbi's MAF) as well as the splines and keeps the
one of the lower validation loss (mean −log p̂(x|θ) on held-out rows: E_θ KL(p ‖ p̂) plus a constant the same
for both); an affine flow holds every conditional Gaussian (sbibm's gaussian_linear), the splines learn skewed,
bounded or several-moded densities (two_moons). One-dimensional x keeps the schedule: its single spline transform
gained nothing from longer training (Weinberg's log-ratio error, mixed over seeds, a little higher in
the mean). The pair layout keeps its schedule too.

Discrete x get no noise: dequantisation already spreads each x over [k, k + 1]. scandal trains
without it by default: its score term already tells the flow how the density moves with θ. (The
score term stays consistent under x noise, E[t|x + hε, θ] being the score of the smoothed density, but
for scandal the default bandwidth gained little in the ratio and cost more in the density.) Noise on θ
as well helped nle a little more on Weinberg but hurt it on the Galton board. The comparisons behind
these defaults are in benchmarks/README.md, "Measurements behind the defaults".

Discrete x (every training x an integer, e.g. the Galton slot) is dequantised: the flow is fitted
to v = x + u, u ~ U(0, 1)^d drawn afresh for every batch, and E_u[−log p̂(x + u|θ)] bounds
−log P̂(x|θ) from above. The estimator then serves the probability mass

    P̂(x = k|θ) = ∫_k^{k+1} p̂(v|θ) dv ≈ Σ_i w_i p̂(k + ξ_i|θ),

an 8-node Gauss–Legendre rule on [k, k + 1] (exact for polynomials of degree 15), so that
Σ_k P̂(k|θ) = ∫ p̂(v|θ) dv ≈ 1 (one-dimensional x only). P̂ is defined at every integer, also at
those the data never showed, where training pushed it towards 0: a rare but possible observation
(or an evaluation grid over all conceivable x) gets a small mass rather than an error.

References:
    Papamakarios, Sterratt, Murray, "Sequential neural likelihood", AISTATS 2019,
    https://arxiv.org/abs/1805.07226 (nle)
    Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244 (scandal)
    Durkan, Bekasov, Murray, Papamakarios, "Neural spline flows", https://arxiv.org/abs/1906.04032
    Rothfuss, Ferreira, Boehm, Walther, Ulrich, Asfour, Krause, "Noise regularization for conditional
        density estimation", https://arxiv.org/abs/1907.08982
    Theis, van den Oord, Bethge, "A note on the evaluation of generative models",
    https://arxiv.org/abs/1511.01844 (dequantisation)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor, nn

from .. import checks, losses
from ..data import Dataset
from ..nn import ConditionalFlow, check_flow_settings, flow_activation, flow_hidden, with_theta_gradient
from ..training import Trainer
from .base import Estimator, register, reference_runs
from .flow_choice import FlowChoice
from .registry import Method, family_method, register_method

QUADRATURE_NODES = 8
NOISE_SCALE, NOISE_ROWS = 0.2, 1000  # nle's default x-noise bandwidth h at NOISE_ROWS training rows
#: nle's training on data without runs at θ_ref and without x noise: to convergence (module docstring)
CONVERGE = {"epochs": 1000, "patience": 20, "lr": 5e-4, "batch_size": 200}
__all__ = ["LikelihoodEstimator"]


def default_noise(rows: int, dim: int) -> float:
    """nle's default noise bandwidth h for `rows` training rows in d = dim = d_x + d_θ dimensions."""
    return NOISE_SCALE * (rows / NOISE_ROWS) ** (-1 / (4 + dim))


def kernel_scale(data: Dataset, fallback: Tensor) -> Tensor:
    """The per-dimension spread of x drawn at θ_ref (label-1 rows, at most 65,536 of them), the unit of the
    x-noise bandwidth: min(std, IQR/1.349), Silverman's robust choice; `fallback` where it is 0 or has
    no rows. The spread of p(x|θ_ref), not of the marginal x: when θ moves x far (x = θ + ε), the
    marginal spread is many times the width of the density's features."""
    batch = next(iter(data.batches(65536, ["x"], label=1, shuffle=False)), None)
    if batch is None or len(batch["x"]) < 2:
        return fallback
    x = batch["x"].flatten(1).double()  # images and other x of more axes: the flow's variable is the flat x
    q = torch.quantile(x, torch.tensor([0.25, 0.75], dtype=x.dtype), dim=0)
    spread = torch.minimum(x.std(0), (q[1] - q[0]) / 1.349).float()
    return torch.where(spread > 0, spread, fallback)


def no_embedding_message(method: str | None) -> str:
    """Why nle and scandal take no `embedding=`, and what to train instead (an embedding summarises x, the input of a
    network; here x is the flow's variable, not its input)."""
    which = method or "nle and scandal"
    instead = {"nle": "nre (RatioEstimator('nre', embedding=...)) or npe (PosteriorEstimator(embedding=...)), which "
                      "need no gold either",
               "scandal": "alices or rascal (RatioEstimator('alices', embedding=...)), which use the same gold, or "
                          "npe (PosteriorEstimator(embedding=...))"}
    alternatives = instead.get(method, "a ratio method (RatioEstimator('nre' or 'alices', embedding=...)), npe "
                                       "(PosteriorEstimator(embedding=...)) or sally (ScoreEstimator(embedding=...))")
    return (f"LikelihoodEstimator ({which}) takes no embedding: its flow learns the density p(x|θ) of x itself, so x "
            "is the flow's variable and θ, its condition, needs no summary. An embedding would replace x by a learned "
            "summary s = e(x), and training e with the flow to maximise log p̂(e(x)|θ) is won by squeezing s to a "
            "point, not by keeping what x says about θ. For images, series or sets, train "
            f"{alternatives}, which read x through an embedding; without one, {which} reads x of any shape "
            "flattened.")


def _gauss_legendre(n: int) -> tuple[Tensor, Tensor]:
    """Nodes ξ_i and weights w_i of the n-point Gauss–Legendre rule on [0, 1]."""
    t, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((t + 1) / 2, dtype=torch.float32), torch.tensor(w / 2, dtype=torch.float32)


class FlowNetwork(ConditionalFlow):
    """log p̂(x|θ) of raw x: the conditional flow of x given θ (`x_norm`, `theta_norm`, `flow`), θ_ref,
    and for discrete data (the `discrete` buffer) the log-mass of the quadrature above.

    `forward` gives log p̂(x|θ), or log P̂(x|θ) for discrete data; `density` the (dequantised) log-density.
    """

    def __init__(self, theta_dim: int, x_dim: int, reference: Tensor, flow: str, transforms: int, hidden,
                 bins: int, activation: str):
        super().__init__(x_dim, theta_dim, flow, transforms, hidden, bins, activation, names=("x", "theta"))
        self.register_buffer("reference", reference.float().reshape(1, -1))
        self.register_buffer("discrete", torch.tensor(False))
        nodes, weights = _gauss_legendre(QUADRATURE_NODES)
        self.register_buffer("nodes", nodes, persistent=False)
        self.register_buffer("log_weights", weights.log(), persistent=False)

    def density(self, v: Tensor, theta: Tensor) -> Tensor:
        """log p̂(v|θ) of continuous v: (n, x_dim), (n, theta_dim) → (n,)."""
        return self.log_prob(v, theta)

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        """log p̂(x|θ) (continuous) or log P̂(x|θ) (discrete): (n, x_dim), (n, theta_dim) → (n,)."""
        if not self.discrete:
            return self.density(x, theta)
        m = len(self.nodes)
        v = (x[:, None, :] + self.nodes[None, :, None]).reshape(-1, x.shape[1])  # only x_dim = 1 reaches here
        log_p = self.density(v, theta.repeat_interleave(m, 0)).reshape(-1, m)
        return torch.logsumexp(log_p + self.log_weights, dim=1)

    @torch.no_grad()
    def sample(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One x ~ p̂(x|θ) per row: (n, theta_dim) → (n, x_dim); discrete x is v ~ p̂(v|θ) rounded down."""
        x = super().sample(theta, generator)
        return x.floor() if self.discrete else x


@register
class LikelihoodEstimator(FlowChoice, Estimator):
    """A neural estimator of the likelihood p(x|θ), trained by nle or scandal.

    A surrogate for inference (`goldmine.inference.surrogate`): its likelihood terms are log p̂(x|θ).

    Arguments:
        method: nle (maximum likelihood) or scandal (plus the score term). None (the default): scandal
            when the data have gold (a simulator with a joint likelihood), else nle, decided by `fit`.
        alpha: the weight α of the score term (scandal).
        flow: auto (the default), nsf (rational-quadratic splines) or maf (affine; a conditional Gaussian for
            d_x = 1, as sbi's default NLE is). auto trains nsf, and where nle trains to convergence (see
            **training) maf as well, keeping the flow of the lower validation loss (`fit`): on sbibm's
            gaussian_linear and bernoulli_glm, whose likelihoods are (nearly) conditional Gaussians, maf had the
            better held-out likelihood, on two_moons nsf (benchmarks/README.md, "sbibm"). The splines learn the density's shape; the affine flow cannot, but its
            errors are nearly the same at θ and θ_ref and cancel in log p̂(x|θ) − log p̂(x|θ_ref). So
            with few runs maf can give the better likelihood surface in θ (limits, posteriors) and nsf
            the better density (sampling x), while with many runs nsf is better at both (nle on
            Weinberg: benchmarks/README.md).
        noise: the bandwidth h of the Gaussian noise on continuous x in training, in units of the spread
            of x at θ_ref (module docstring). None (the default): 0.2·(n/1000)^(−1/(4 + d)) for nle on data
            with runs at θ_ref, else 0 (scandal, and data of the layout "prior"); 0 turns it off. No effect on discrete x. For nle on Weinberg it lowers the log-ratio
            error at small budgets and leaves the density's KL nearly as it was (benchmarks/README.md).
        transforms: the number of flow transformations; by default 1 for one-dimensional x (one spline
            transform had about half the log-ratio error of three on Weinberg: benchmarks/README.md) and
            3 otherwise, where the autoregressive layers need to mix dimensions.
        hidden: the widths of the hidden layers of each transformation's network (`hidden_features`,
            its former name, is still accepted).
        bins: the number of spline bins (nsf).
        activation: a smooth activation (silu, tanh, elu, gelu, softplus), so that the score is smooth. None
            (the default): silu, and tanh for auto's maf (as sbi's MAF).
        **training: settings of the `goldmine.training.Trainer` (epochs, batch_size, lr, seed, ...). For nle on
            data without runs at θ_ref (layout "prior", as `goldmine.infer` draws them), without x noise and
            with continuous x of more than one dimension, the settings not given default to training to
            convergence, `CONVERGE` (module docstring).

    Raises:
        ValueError: an option of the wrong type or out of its range, naming it (here, not at fit time).

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 2000, os.path.join(tempfile.mkdtemp(), "g.h5"),
        ...                    progress=False)
        >>> est = LikelihoodEstimator("scandal", epochs=2, progress=False).fit(data)
        >>> est.log_prob(torch.tensor([[15.0]]), torch.tensor([[0.5]])).shape
        torch.Size([1])
        >>> est.sample(torch.tensor([0.5]), 4).shape
        torch.Size([4, 1])
    """

    kind = "likelihood"
    capabilities = frozenset({"likelihood", "ratio", "score"})

    #: lr 1e-3 and batches of at least 128 rows, the settings of the flows' benchmarks
    TRAINING_DEFAULTS = {"lr": 1e-3, "min_batch_size": 128}

    def __init__(self, method: str | None = None, alpha: float = 1.0, flow: str = "auto", transforms: int | None = None,
                 hidden=(64, 64), bins: int = 8, activation: str | None = None, noise: float | None = None,
                 **training):
        if "embedding" in training:
            raise ValueError(no_embedding_message(method))
        if method is not None:
            family_method("likelihood", method, "LikelihoodEstimator")
        checks.non_negative_float(alpha, "alpha")
        if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float))
                                  or not 0 <= noise < float("inf")):
            raise ValueError(f"noise must be None (the default bandwidth) or a finite number ≥ 0; got {noise!r}.")
        counts = {"bins": bins} if transforms is None else {"transforms": transforms, "bins": bins}
        check_flow_settings(flow, activation, **counts)
        hidden = flow_hidden(hidden, training, (64, 64))
        self.given_training = frozenset(training)  # the Trainer settings the user chose (CONVERGE leaves them)
        super().__init__(**training)
        self.method, self.alpha, self.flow, self.transforms = method, alpha, flow, transforms
        self.flow_: str | None = None if flow == "auto" else flow  # the flow fitted (auto: chosen by fit)
        self.hidden, self.bins, self.activation = hidden, bins, activation
        self.noise = noise
        self.params = {"method": method, "alpha": alpha, "flow": flow, "transforms": transforms,
                       "hidden": list(hidden), "bins": bins, "activation": activation,
                       "noise": noise}

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        transforms = self.transforms or (1 if x_dim == 1 else 3)
        return FlowNetwork(theta_dim, x_dim, self.reference_, self.flow_, transforms, self.hidden,
                           self.bins, flow_activation(self.flow, self.flow_, self.activation))

    def fit(self, data: Dataset | str, device=None) -> "LikelihoodEstimator":
        """Trains on every run and returns self: a row drawn at θ (label 0) is the pair (θ, x) with the joint
        score t(x, z|θ), a row drawn at θ_ref (label 1) the pair (θ_ref, x) with t(x, z|θ_ref). The
        maximum-likelihood objective is minimised by p̂ = p whatever the distribution of θ, so the whole
        budget trains the flow. `device`: where to train and then compute (`goldmine.checks.device`), the CPU
        by default.

        With flow="auto" (the default) the spline flow is trained, and where the training runs to convergence
        (`CONVERGE`: nle on data without runs at θ_ref, continuous x of more than one dimension) the affine one too,
        keeping the one of the lower validation loss (`flow_` names it).

        Raises:
            NotImplementedError: the data's x are integers and x_dim > 1 (the mass quadrature is 1-D).
        """
        data = self._resolve_method(data, "likelihood")
        # the other flows are tried only where nle trains to convergence
        self._fit_flows(lambda: self._fit_flow(data, device))
        return self

    def _fit_flow(self, data: Dataset, device) -> bool:
        """One fit of the flow `flow_` (network_, history_, noise_, trainer); whether it trained to convergence."""
        spec = family_method("likelihood", self.method, "LikelihoodEstimator")
        fields = spec.fields
        data = self._setup(data, fields, self.method)
        network = self.network_
        train, _ = data.split(self.trainer.validation)
        xs = [b["x"].flatten(1) for b in train.batches(train.scan_rows(), ["x"], shuffle=False)]
        discrete = bool(xs) and all(bool((x == x.round()).all()) for x in xs)
        if discrete and self.x_dim_ > 1:
            raise NotImplementedError(
                f"the x of {data.path} are integers in {self.x_dim_} dimensions: LikelihoodEstimator handles "
                "discrete x only when x_dim = 1 (its probability masses integrate the flow over [k, k + 1] by "
                "quadrature). Add continuous noise to x, or use a RatioEstimator."
            )
        network.x_norm.fit(x + 0.5 if discrete else x for x in xs)  # the dequantised v = x + u has mean x + 1/2
        network.theta_norm.fit(b["theta"] for b in train.batches(65536, ["theta"], label=0, shuffle=False))
        network.discrete.fill_(discrete)
        rng = torch.Generator().manual_seed(self.trainer.seed)
        if self.noise is not None:
            self.noise_ = float(self.noise)
        elif self.method == "nle" and reference_runs(train):  # the kernel's unit needs runs at θ_ref
            self.noise_ = default_noise(len(train), self.x_dim_ + self.theta_dim_)
        else:
            self.noise_ = 0.0
        self.trainer = Trainer(**self.training)  # every fit starts from the settings given (and the family's)
        converging = self.method == "nle" and self.noise_ == 0 and self.noise is None and not discrete and self.x_dim_ > 1
        if converging:
            self.trainer = dataclasses.replace(self.trainer, **{k: v for k, v in CONVERGE.items()
                                                                if k not in self.given_training})
        # None: no x noise (off, or discrete x, whose dequantisation must draw the same numbers either way)
        x_scale = None if discrete or self.noise_ == 0 else self.noise_ * kernel_scale(train, network.x_norm.std)

        reference = self.reference_.float()

        def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
            at_ref = batch["label"][:, None] == 1
            x, theta = batch["x"].flatten(1), torch.where(at_ref, reference.to(at_ref.device), batch["theta"])
            if net.training and x_scale is not None:
                x = x + x_scale * torch.randn(x.shape, generator=rng).to(x.device)
            # training sees dequantised v; validation scores the mass P̂(x|θ) that the estimator serves
            dequantise = discrete and net.training
            if dequantise:
                x = x + torch.rand(x.shape, generator=rng).to(x.device)
            log_p, score_hat = self._forward(net, x, theta, spec.theta_gradient, dequantise)
            if score_hat is None:
                return spec.loss(log_p).mean()
            score = torch.where(at_ref, batch["score_ref"], batch["score"])
            return spec.loss(log_p, score_hat, score, self.alpha).mean()

        self._train(loss, data, fields, device=device)
        return converging

    @staticmethod
    def _forward(net: nn.Module, x: Tensor, theta: Tensor, with_score: bool,
                 density: bool = False) -> tuple[Tensor, Tensor | None]:
        fn = net.density if density else net
        if not with_score:
            return fn(x, theta), None
        return with_theta_gradient(fn, x, theta, create_graph=net.training)

    def _check_x(self, x) -> Tensor:
        """x as flat rows (n, x_dim): the flow's variable is x itself, flattened when it has more axes."""
        x = super()._check_x(x)
        return x.reshape(len(x), self.x_dim_)

    def _check_support(self, x: Tensor) -> None:
        if self.network_.discrete and not (x == x.round()).all():
            raise ValueError("x holds non-integer values, but this estimator was fitted on integer (discrete) x: "
                             "its log_prob is the log of a probability mass P̂(x = k|θ), defined at integers k.")

    def log_prob(self, x, theta) -> Tensor:
        """log p̂(x|θ), or log P̂(x|θ) for discrete x: x (n, x_dim), θ (n, theta_dim) or one point → (n,)."""
        net = self._check_fitted()
        x, theta = self._check_x_theta(x, theta)
        self._check_support(x)
        with torch.no_grad():
            return net(x, theta)

    def log_ratio(self, x, theta) -> Tensor:
        """log p̂(x|θ) − log p̂(x|θ_ref): x (n, x_dim), θ (n, theta_dim) or one point → (n,)."""
        net = self._check_fitted()
        x, theta = self._check_x_theta(x, theta)
        self._check_support(x)
        with torch.no_grad():
            return net(x, theta) - net(x, net.reference.expand_as(theta))

    def log_likelihood_terms(self, x, theta) -> Tensor:
        """log p̂(x|θ) (log P̂(x|θ) for discrete x), (n,): the constant in θ of the likelihood terms is 0,
        and log r̂'s denominator p̂(x|θ_ref) is not worth a pass (`goldmine.inference.surrogate`)."""
        return self.log_prob(x, theta)

    def score(self, x, theta) -> Tensor:
        """∇_θ log p̂(x|θ): x (n, x_dim), θ (n, theta_dim) or one point → (n, theta_dim)."""
        net = self._check_fitted()
        x, theta = self._check_x_theta(x, theta)
        self._check_support(x)
        return self._forward(net, x, theta, True)[1].detach()

    def sample(self, theta, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p̂(x|θ): n draws at one point θ (theta_dim,) or (1, theta_dim), or one draw per row of
        θ (m, theta_dim) → (n, x_dim) or (m, x_dim), or (n, *x_shape) for x of more axes. Discrete x are
        integers drawn from P̂(x|θ)."""
        net = self._check_fitted()
        theta = checks.rows(theta, self.theta_dim_, "theta", dtype=torch.float32)
        if n is not None:
            n = checks.sample_count(n, "n")  # n, or a sample shape (n,)
            if len(theta) not in (1, n):
                raise ValueError(f"n={n} draws need one point θ or {n} rows of θ; got theta of shape "
                                 f"{tuple(theta.shape)}.")
            theta = theta.expand(n, -1)
        x = net.sample(theta, generator)
        return x.reshape(len(x), *self.x_shape_) if len(self.x_shape_ or ()) > 1 else x


SCANDAL = "Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, arXiv:1805.12244"
register_method(Method("nle", "likelihood", LikelihoodEstimator, "flow p̂(x|θ)",
                       "Papamakarios, Sterratt, Murray, arXiv:1805.07226", fields=("theta", "x", "label"),
                       loss=losses.nle))
register_method(Method("scandal", "likelihood", LikelihoodEstimator, "flow p̂(x|θ) + α·score term", SCANDAL,
                       fields=("theta", "x", "label", "score", "score_ref"), loss=losses.scandal,
                       theta_gradient=True))
