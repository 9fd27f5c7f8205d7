"""Score regression at the reference: sally and sallino.

A network t̂(x) is regressed on the joint score at the reference, t(x, z|θ_ref), over runs drawn
at θ_ref. The loss E‖t̂(x) − t(x, z|θ_ref)‖² is minimised by t̂(x) = E[t(x, z|θ_ref)|x] =
∇_θ log p(x|θ)|_{θ_ref}, the score, which is the locally sufficient statistic near θ_ref: in
p(x|θ) ≈ p(t̂(x)|θ) a d_θ-dimensional summary replaces x. sally runs inference on t̂(x);
sallino on the scalar h(x|θ) = t̂(x)·(θ − θ_ref), the direction that matters at each θ. The Fisher
information at θ_ref is I = E[t̂ t̂ᵀ].

References:
    Brehmer, Cranmer, Louppe, Pavez, "Constraining effective field theories with machine
    learning", https://arxiv.org/abs/1805.00013 and the guide https://arxiv.org/abs/1805.00020
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import checks, losses
from ..data import Dataset
from ..embeddings import embedding_record, embedding_spec, features, x_input
from ..memory import as_data
from ..nn import Standardize, check_activation, mlp
from .base import Estimator, register
from .baselines import theta_bin_index
from .registry import Method, family_method, register_method

__all__ = ["ScoreEstimator", "SummaryHistogram"]


class ScoreNetwork(nn.Module):
    """t̂(x) = std_t · MLP(s) + mean_t, with the score's own statistics as output scale; s = x standardised, or
    its embedding e(x̃) (`goldmine.embeddings`)."""

    def __init__(self, theta_dim: int, x_dim: int, hidden, activation: str, embedding=None, x_shape=None):
        super().__init__()
        self.x_norm, self.embedding, width = x_input(embedding, x_dim, x_shape)
        self.out = Standardize(theta_dim)  # used in reverse: the statistics of the target
        self.net = mlp(width, theta_dim, hidden, activation)

    def forward(self, x: Tensor) -> Tensor:
        """x: (n, *x_shape) → t̂: (n, theta_dim)."""
        return self.net(features(self.x_norm, self.embedding, x)) * self.out.std + self.out.mean


@register
class ScoreEstimator(Estimator):
    """A neural estimator of the score t(x) = ∇_θ log p(x|θ) at θ_ref.

    Not a likelihood itself: inference goes through a histogram of its summary
    (`likelihood_surrogate(data)`, the "summary" capability of `goldmine.inference.surrogate`).

    Arguments:
        method: sally (inference on t̂(x)) or sallino (on h = t̂(x)·(θ − θ_ref)).
        hidden, activation: the network: the widths of its hidden layers and a smooth activation (silu,
            tanh, elu, gelu, softplus).
        embedding: a network that summarises x first, trained with it: a built-in by name or a dict of its
            name and settings, or a torch.nn.Module (`goldmine.embeddings`); None: x itself, flattened.
        **training: settings of the `goldmine.training.Trainer`.

    Raises:
        ValueError: an option of the wrong type or out of its range, naming it (here, not at fit time).
    """

    kind = "score"
    capabilities = frozenset({"summary"})

    #: lr 1e-3 and batches of at least 128 rows, as the flows (not measured for sally)
    TRAINING_DEFAULTS = {"lr": 1e-3, "min_batch_size": 128}

    def __init__(self, method: str = "sally", hidden=(128, 128, 128), activation: str = "silu", embedding=None,
                 **training):
        family_method("score", method, "ScoreEstimator")
        widths = checks.widths(hidden, "hidden")
        check_activation(activation)
        self.embedding = embedding_spec(embedding)
        super().__init__(**training)
        self.method, self.hidden, self.activation = method, widths, activation
        self.params = {"method": method, "hidden": list(widths), "activation": activation}
        if self.embedding is not None:
            self.params["embedding"] = embedding_record(self.embedding)

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        return ScoreNetwork(theta_dim, x_dim, self.hidden, self.activation, self.embedding, self.x_shape_)

    def fit(self, data: Dataset | str, device=None) -> "ScoreEstimator":
        """Trains on the rows drawn at θ_ref (label 1) and returns self.

        Arguments:
            data: the rows (a Dataset, its path, or tensors in memory, `goldmine.memory.as_data`).
            device: where to train and then compute (`goldmine.checks.device`): None or "cpu" (the default),
                "cuda", "mps", a torch.device, or "auto" (an accelerator when present).
        """
        spec = family_method("score", self.method, "ScoreEstimator")
        fields = spec.fields
        data = self._setup(data, fields + ("label",), self.method)
        train, _ = data.split(self.trainer.validation)
        self.network_.x_norm.fit(b["x"] for b in train.batches(train.scan_rows(), ["x"], label=1, shuffle=False))
        self.network_.out.fit(b["score_ref"] for b in train.batches(65536, ["score_ref"], label=1, shuffle=False))

        def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
            return spec.loss(net(batch["x"]), batch["score_ref"]).mean()

        self._train(loss, data, fields, label=1, device=device)
        return self

    def score(self, x) -> Tensor:
        """t̂(x): (n, x_dim) → (n, theta_dim)."""
        net = self._check_fitted()
        with torch.no_grad():
            return net(self._check_x(x))

    def summary(self, x, theta=None) -> Tensor:
        """sally: t̂(x), (n, theta_dim); sallino: h = t̂(x)·(θ − θ_ref), (n,), θ (n, theta_dim) or one point."""
        if self.method == "sally":
            return self.score(x)
        if theta is None:
            raise ValueError("sallino's summary h = t̂(x)·(θ − θ_ref) needs theta.")
        x, theta = self._check_x_theta(x, theta)
        return (self.score(x) * (theta - self.reference_.float().to(theta.device))).sum(-1)

    def fisher_information_at_reference(self, x) -> Tensor:
        """I(θ_ref) ≈ mean of t̂ t̂ᵀ over x ~ p(x|θ_ref): (n, x_dim) → (theta_dim, theta_dim)."""
        t = self.score(x).double()
        return t.T @ t / len(t)

    def likelihood_surrogate(self, data: Dataset | str, theta_bins: int = 10, x_bins: int = 30) -> "SummaryHistogram":
        """The likelihood surrogate that inference uses: histograms of the summary filled from `data`."""
        return SummaryHistogram(self, theta_bins, x_bins).fit(data)


class SummaryHistogram:
    """log r̂(x|θ, θ_ref) from histograms of the sally / sallino summary, one per bin of θ.

    In θ bin k with centre c_k, x is summarised by h_k(x) = t̂(x)·u_k with u_k = c_k − θ_ref
    (sallino; the unit vector for a one-dimensional θ bin centred on θ_ref); for sally, which needs
    the whole t̂(x), only one-dimensional θ is supported and h = t̂(x). Rows drawn at θ in bin k give
    the histogram of h_k at θ, rows drawn at θ_ref the reference histogram of the same h_k, on shared
    even bins between the 0.5% and 99.5% quantiles plus two overflow bins, with add-half smoothing:

        log r̂(x|θ) = log p̂(h_k(x)|θ-bin k) − log p̂(h_k(x)|θ_ref).

    Arguments:
        estimator: a fitted ScoreEstimator.
        theta_bins: bins per θ dimension over the range of θ in the data.
        x_bins: bins of the summary.
    """

    kind = "ratio"
    capabilities = frozenset({"likelihood", "ratio"})

    def __init__(self, estimator: ScoreEstimator, theta_bins: int = 10, x_bins: int = 30):
        estimator._check_fitted()
        checks.positive_int(theta_bins, "theta_bins")
        checks.positive_int(x_bins, "x_bins")
        if estimator.method == "sally" and estimator.theta_dim_ != 1:
            raise ValueError("a histogram of sally's full score needs one-dimensional θ; use method='sallino'.")
        self.estimator, self.theta_bins, self.x_bins = estimator, theta_bins, x_bins

    def fit(self, data: Dataset | str) -> "SummaryHistogram":
        data = as_data(data)
        rows = data.tensors(["theta", "x", "label"], dtype=torch.float64)
        score = self.estimator.score(rows["x"]).double().cpu()
        theta, at_ref = rows["theta"], rows["label"] == 1
        self.reference_ = self.estimator.reference_.double()
        self.theta_dim_, self.x_dim_ = self.estimator.theta_dim_, self.estimator.x_dim_
        self.x_shape_ = self.estimator.x_shape_
        self.theta_names_ = self.estimator.theta_names_
        # the range of x behind the histograms: the rows filling them (the network saw the rows at θ_ref only);
        # none for x of more axes (images), as for the estimators
        self.x_low_, self.x_high_ = (rows["x"].amin(0), rows["x"].amax(0)) if rows["x"].ndim == 2 else (None, None)
        self.low_, self.high_ = theta.min(0).values, theta.max(0).values
        bins = self._theta_bin(theta)
        centres = self._centres()
        self.directions_ = centres - self.reference_
        small = self.directions_.norm(dim=1) < 1e-12
        self.directions_[small] = 1.0 / self.theta_dim_**0.5
        self.edges_, self.counts_, self.ref_counts_ = [], [], []
        for k in range(len(centres)):
            h = score @ self.directions_[k]
            mine = (bins == k) & ~at_ref
            edges = torch.quantile(torch.cat([h[mine], h[at_ref]]), torch.linspace(0.005, 0.995, self.x_bins + 1,
                                                                                   dtype=torch.float64))
            self.edges_.append(torch.unique(edges))
            self.counts_.append(torch.bincount(torch.bucketize(h[mine], self.edges_[-1]), minlength=len(self.edges_[-1]) + 1))
            self.ref_counts_.append(torch.bincount(torch.bucketize(h[at_ref], self.edges_[-1]),
                                                   minlength=len(self.edges_[-1]) + 1))
        return self

    def _centres(self) -> Tensor:
        axes = [torch.linspace(lo, hi, 2 * self.theta_bins + 1, dtype=torch.float64)[1::2]
                for lo, hi in zip(self.low_.tolist(), self.high_.tolist())]
        return torch.cartesian_prod(*axes).reshape(-1, self.theta_dim_)

    def _theta_bin(self, theta: Tensor) -> Tensor:
        return theta_bin_index(theta, self.low_, self.high_, self.theta_bins)

    def log_ratio(self, x, theta) -> Tensor:
        """log r̂(x|θ, θ_ref): x (n, x_dim), θ (n, theta_dim) or one point → (n,)."""
        x, theta = self.estimator._check_x_theta(x, theta)
        score, bins = self.estimator.score(x).double().cpu(), self._theta_bin(theta.double())
        out = torch.empty(len(x), dtype=torch.float64)
        for k in bins.unique().tolist():
            rows = bins == k
            b = torch.bucketize(score[rows] @ self.directions_[k], self.edges_[k])
            counts, ref = self.counts_[k].double() + 0.5, self.ref_counts_[k].double() + 0.5
            out[rows] = (counts[b] / counts.sum()).log() - (ref[b] / ref.sum()).log()
        return out

    def log_likelihood_terms(self, x, theta) -> Tensor:
        """log p̂(x|θ) up to a constant in θ: log r̂(x|θ, θ_ref), (n,) (`goldmine.inference.surrogate`)."""
        return self.log_ratio(x, theta)


SALLY = "Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013"
register_method(Method("sally", "score", ScoreEstimator, "score t̂(x) at θ_ref; inference on a histogram of t̂",
                       SALLY, fields=("x", "score_ref"), label=1, loss=losses.sally))
register_method(Method("sallino", "score", ScoreEstimator, "as sally; inference on h = t̂(x)·(θ − θ_ref)", SALLY,
                       fields=("x", "score_ref"), label=1, loss=losses.sally))
