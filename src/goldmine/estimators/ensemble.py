"""Ensembles of neural estimators: k members trained on bootstrap resamples, averaged in log space.

Member j is the template estimator (same class, method and options) with the Trainer's seed s + j,
trained on a bootstrap resample of the training rows (`goldmine.memory.resample`): the rows of the data
before their validation cut are drawn with replacement, in whole pairs when they come in pairs (rows 2i and
2i + 1 share θ_i), seeded by s + j; the validation rows stay as they are, so that every member is validated on rows it never
saw. The ensemble's surrogate is the mean in log space,

    log r̂(x|θ) = (1/k) Σ_j log r̂_j(x|θ),    log p̂(x|θ) = (1/k) Σ_j log p̂_j(x|θ)

(for likelihoods a normalised geometric mean only up to a constant in θ per x, which cancels in
every likelihood ratio), and the spread of the members, the sample standard deviation of
log r̂_j(x|θ), is an uncertainty of log r̂ (as MadMiner's ensembles report it). Inference reads
the members themselves (the capability "ensemble") to see where their likelihood surfaces, and so
their confidence regions, disagree (`goldmine.inference.ensemble_check`); averaging members makes
approximate posteriors and regions more conservative (Hermans et al.).

The command line and studies build one with the option `ensemble=k` of every method of the ratio
and likelihood families (`ENSEMBLE_FAMILIES`); k = 1 is the plain estimator. Saved as one folder:
the members' weights in one weights.safetensors, member j's keys prefixed by "j.".

References:
    Lakshminarayanan, Pritzel, Blundell, "Simple and scalable predictive uncertainty estimation using
    deep ensembles", NeurIPS 2017, https://arxiv.org/abs/1612.01474
    Brehmer, Kling, Espejo, Cranmer, "MadMiner: Machine learning-based inference for particle
    physics", Comput. Softw. Big Sci. 4 (2020) 3, https://arxiv.org/abs/1907.10621
    Hermans, Delaunoy, Rozet, Wehenkel, Begy, Louppe, "A trust crisis in simulation-based inference?
    Your posterior approximations can be unfaithful", https://arxiv.org/abs/2110.06581
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from .. import checks
from ..data import Dataset
from ..memory import Bootstrap, as_data, resample
from .base import REGISTRY, Estimator, register

#: the families whose methods take the option `ensemble=k` on the command line and in studies
ENSEMBLE_FAMILIES = ("ratio", "likelihood")
#: what an ensemble can offer of its members' capabilities
SHARED = frozenset({"likelihood", "ratio", "score"})

__all__ = ["Bootstrap", "ENSEMBLE_FAMILIES", "Ensemble", "ensembled"]


@register
class Ensemble(Estimator):
    """k copies of an estimator, trained on bootstrap resamples with seeds s, s + 1, ..., averaged in log space.

    A surrogate for inference with the template's likelihood, ratio and score capabilities plus
    "ensemble": `members_` (the fitted members) and `member_terms(x, theta)`.

    Arguments:
        estimator: an unfitted template, e.g. `RatioEstimator("alices", epochs=20)`; each member is built
            from its class, `params` and Trainer settings, with the seed shifted by the member's index.
        members: the number k of members.
        bootstrap: train each member on a bootstrap resample of the training rows (True), or on the same
            rows with its own seed only (False).

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 2000, os.path.join(tempfile.mkdtemp(), "g.h5"),
        ...                    progress=False)
        >>> est = gm.Ensemble(gm.RatioEstimator("carl", epochs=2, progress=False), 3).fit(data)
        >>> x, theta = torch.tensor([[15.0]]), torch.tensor([[0.5]])
        >>> est.log_ratio(x, theta).shape, est.log_ratio_std(x, theta).shape
        (torch.Size([1]), torch.Size([1]))
    """

    def __init__(self, estimator: Estimator, members: int = 5, bootstrap: bool = True):
        declared = getattr(estimator, "capabilities", None)
        if declared is None or not hasattr(estimator, "params") or not hasattr(estimator, "training"):
            raise TypeError(f"estimator must be an unfitted goldmine estimator such as gm.RatioEstimator('alices'); "
                            f"got {type(estimator).__name__}.")
        can = frozenset(declared) & SHARED
        if "likelihood" not in can or "ensemble" in declared:
            raise TypeError(f"an ensemble averages likelihood surrogates; {type(estimator).__name__} is none "
                            "(use a RatioEstimator or a LikelihoodEstimator).")
        checks.positive_int(members, "members")
        if not isinstance(bootstrap, bool):
            raise ValueError(f"bootstrap must be True or False; got {bootstrap!r}.")
        super().__init__()
        self.template, self.k, self.bootstrap = estimator, int(members), bootstrap
        self.kind = estimator.kind
        self.capabilities = can | {"ensemble"}
        self.method = getattr(estimator, "method", None)
        self.members_: list[Estimator] = []
        self._record()

    def _record(self) -> None:
        source = self.members_[0] if self.members_ else self.template
        self.params = {"members": self.k, "bootstrap": self.bootstrap,
                       "estimator": {"class": type(source).__name__, "params": source.params,
                                     "training": self.template.training}}

    def _member(self, j: int, params: dict | None = None) -> Estimator:
        cls = type(self.template)
        training = dict(self.template.training)
        training["seed"] = training.get("seed", 0) + j
        params = dict(self.template.params if params is None else params)
        if isinstance(getattr(self.template, "embedding", None), nn.Module):  # the module itself, not its record
            params["embedding"] = self.template.embedding
        return cls(**params, **training)

    def fit(self, data: Dataset | str, device=None) -> "Ensemble":
        """Trains the k members one after the other (each on `device`, the CPU by default) and returns self (a
        failed member leaves it unfitted)."""
        data = as_data(data)
        members = []
        self.members_, self.network_ = [], None
        for j in range(self.k):
            member = self._member(j)
            rows = resample(data, member.trainer.validation, member.trainer.seed) if self.bootstrap else data
            members.append(member.fit(rows, device=device))
        self._fitted(members)
        return self

    def _fitted(self, members: list[Estimator]) -> None:
        first = members[0]
        self.members_ = members
        self.method = getattr(first, "method", None)
        self.theta_dim_, self.x_dim_, self.reference_ = first.theta_dim_, first.x_dim_, first.reference_
        self.x_shape_ = getattr(first, "x_shape_", None)
        self.theta_names_ = getattr(first, "theta_names_", None)
        self.network_ = nn.ModuleList([m.network_ for m in members])
        self.history_ = {**first.history_, "members": [m.history_ for m in members]}
        self._record()

    @classmethod
    def _restore(cls, config: dict, state: dict[str, Tensor]) -> "Ensemble":
        params = config["params"]
        spec = params["estimator"]
        member_cls = REGISTRY.get(spec["class"])
        if member_cls is None:
            raise KeyError(f"unknown member class {spec['class']!r}")
        est = cls(member_cls(**spec["params"], **spec["training"]), params["members"], params["bootstrap"])
        members = []
        for j in range(est.k):
            prefix = f"{j}."
            own = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            member = est._member(j, spec["params"])
            members.append(type(member)._restore(
                {"params": spec["params"], "training": member.training, "fitted": config["fitted"]}, own))
        if len(state) != sum(len(m.network_.state_dict()) for m in members):
            raise KeyError("the weights hold tensors of more members than the config names")
        est._fitted(members)
        return est

    # -- the surrogate -------------------------------------------------------------------------

    def _stack(self, name: str, x, theta) -> Tensor:
        self._check_fitted()
        return torch.stack([getattr(m, name)(x, theta) for m in self.members_])

    def member_terms(self, x, theta) -> Tensor:
        """Each member's likelihood terms: x (n, x_dim), θ (n, theta_dim) or one point → (k, n)."""
        return self._stack("log_likelihood_terms", x, theta)

    def log_likelihood_terms(self, x, theta) -> Tensor:
        """The mean of the members' likelihood terms, (n,) (`goldmine.inference.surrogate`)."""
        return self.member_terms(x, theta).mean(0)

    @property
    def log_likelihood_table(self):
        """The mean of the members' `log_likelihood_table(x, theta)` → (m, n) when every member has one (a
        ratio estimator evaluates its reference term once per run), else None: inference then pairs x and θ
        itself (`goldmine.inference.surrogate`)."""
        tables = [getattr(m, "log_likelihood_table", None) for m in self.members_]
        if not tables or not all(callable(t) for t in tables):
            return None
        return lambda x, theta: torch.stack([table(x, theta) for table in tables]).mean(0)

    def log_ratio(self, x, theta) -> Tensor:
        """The mean over members of log r̂_j(x|θ, θ_ref): x (n, x_dim), θ (n, theta_dim) or one point → (n,)."""
        return self._stack("log_ratio", x, theta).mean(0)

    def log_ratio_std(self, x, theta) -> Tensor:
        """The members' spread of log r̂_j(x|θ, θ_ref), their sample standard deviation (0 for k = 1): → (n,)."""
        values = self._stack("log_ratio", x, theta)
        return values.std(0) if len(values) > 1 else torch.zeros_like(values[0])

    def score(self, x, theta) -> Tensor:
        """The mean of the members' ∇_θ log p̂_j(x|θ): → (n, theta_dim)."""
        return self._stack("score", x, theta).mean(0)

    def log_prob(self, x, theta) -> Tensor:
        """Likelihood members only: the mean of log p̂_j(x|θ), a log-density up to a constant in θ per x: → (n,)."""
        if not callable(getattr(self.template, "log_prob", None)):
            raise AttributeError(f"the members ({type(self.template).__name__}) have no log_prob; use log_ratio.")
        return self._stack("log_prob", x, theta).mean(0)


def ensembled(estimator: Estimator, members: int) -> Estimator:
    """`estimator` itself for members = 1, else `Ensemble(estimator, members)` (the option `ensemble=k`)."""
    members = checks.positive_int(members, "ensemble")
    return estimator if members == 1 else Ensemble(estimator, members)
