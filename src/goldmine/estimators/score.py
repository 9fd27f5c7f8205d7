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

from .. import losses
from ..data import Dataset
from ..nn import Standardize, mlp
from .base import Estimator, register

METHODS = ("sally", "sallino")


class ScoreNetwork(nn.Module):
    """t̂(x) = std_t · MLP(standardised x) + mean_t, with the score's own statistics as output scale."""

    def __init__(self, theta_dim: int, x_dim: int, hidden, activation: str):
        super().__init__()
        self.x_norm = Standardize(x_dim)
        self.out = Standardize(theta_dim)  # used in reverse: the statistics of the target
        self.net = mlp(x_dim, theta_dim, hidden, activation)

    def forward(self, x: Tensor) -> Tensor:
        """x: (n, x_dim) → t̂: (n, theta_dim)."""
        return self.net(self.x_norm(x)) * self.out.std + self.out.mean


@register
class ScoreEstimator(Estimator):
    """A neural estimator of the score t(x) = ∇_θ log p(x|θ) at θ_ref.

    Arguments:
        method: sally (inference on t̂(x)) or sallino (on h = t̂(x)·(θ − θ_ref)).
        hidden, activation: the network.
        **training: settings of the `goldmine.training.Trainer`.
    """

    def __init__(self, method: str = "sally", hidden=(128, 128, 128), activation: str = "silu", **training):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} for ScoreEstimator; known: {', '.join(METHODS)}.")
        super().__init__(**training)
        self.method, self.hidden, self.activation = method, tuple(hidden), activation
        self.params = {"method": method, "hidden": list(hidden), "activation": activation}

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        return ScoreNetwork(theta_dim, x_dim, self.hidden, self.activation)

    def fit(self, data: Dataset | str) -> "ScoreEstimator":
        """Trains on the rows drawn at θ_ref (label 1) and returns self."""
        fields = ("x", "score_ref")
        data = self._setup(data, fields + ("label",), self.method)
        train, _ = data.split(self.trainer.validation)
        self.network_.x_norm.fit(b["x"] for b in train.batches(65536, ["x"], label=1, shuffle=False))
        self.network_.out.fit(b["score_ref"] for b in train.batches(65536, ["score_ref"], label=1, shuffle=False))

        def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
            return losses.sally(net(batch["x"]), batch["score_ref"]).mean()

        self.history_ = self.trainer.fit(self.network_, loss, data, fields, label=1, desc=self.method)
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
        return (self.score(x) * (theta - self.reference_.float())).sum(-1)

    def fisher_information(self, x) -> Tensor:
        """I(θ_ref) ≈ mean of t̂ t̂ᵀ over x ~ p(x|θ_ref): (n, x_dim) → (theta_dim, theta_dim)."""
        t = self.score(x).double()
        return t.T @ t / len(t)
