"""The Pyro adapter: any Pyro model of a simulator becomes a simulator with gold.

A Pyro model is an ordinary Python function of θ that draws its random numbers with
``pyro.sample`` statements. Running it under a trace records every sample site s with its
distribution and value, so the latent path z is the set of recorded values and

    log p(x, z|θ) = Σ_s log p_s(value_s | values of the earlier sites, θ).

Replaying a recorded run at another θ conditions every site on its recorded value and re-evaluates
the same sum; it is differentiable in θ, so autograd gives the joint score t(x, z|θ) without any
derivation by hand. This is how the gold of Brehmer et al. is mined from probabilistic programs.

Runs are rows: the model receives θ: (n, d_θ) and either wraps its sites in a ``pyro.plate`` of
size n (the outermost plate of that size indexes runs) or gives every site a leading batch
dimension n. Sites shared by all runs would couple them and are refused.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
    Bingham et al., "Pyro: Deep universal probabilistic programming", JMLR 20 (2019) 1,
    https://arxiv.org/abs/1810.09538
"""

from __future__ import annotations

from functools import cache
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution

from .base import DTYPE, Draws, Simulator, seed_from


def _import_pyro():
    """Pyro is an optional extra: importing goldmine must not need it."""
    try:
        import pyro
        import pyro.distributions.util
        import pyro.poutine.messenger
    except ImportError as error:
        raise ImportError(
            "PyroSimulator needs the optional dependency pyro-ppl: pip install goldmine[pyro]"
        ) from error
    return pyro


class PyroSimulator(Simulator):
    """A simulator written as a Pyro model, with joint log-likelihood and score by replay.

    Arguments:
        model: a function of θ (n, theta_dim) that draws with ``pyro.sample``; one run per row,
            inside a ``pyro.plate`` of size n or with a leading batch dimension n at every site.
            Its randomness must come from Pyro / torch (seeded from the generator on every call).
            ``pyro.param`` is not supported: every parameter of the simulator belongs in θ.
        prior: a torch distribution over θ with event shape (theta_dim,).
        observed: the name of the sample site that holds x, or a list of names whose values are
            concatenated in order as the columns of x (each flattened to (n, -1)). Use
            ``pyro.sample(name, dist.Delta(value))`` or ``pyro.deterministic(name, value,
            event_dim=0)`` to expose a function of the latents as x. One site whose value per run
            has more than one axis (an image (C, H, W), a series, a set; e.g. a distribution with
            ``.to_event(3)``) keeps its shape: x is (n, *x_shape) and `x_shape` records it.
        flatten: x as flat rows (n, x_dim) even when the one observed site has more axes.
        reference: θ_ref; the prior's mean by default.
        name: stored in data files.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from goldmine.simulators import box_prior
        >>> def model(theta):
        ...     with pyro.plate("runs", theta.shape[0]):
        ...         z = pyro.sample("z", dist.Normal(theta[:, 0], 1.0))
        ...         return pyro.sample("x", dist.Normal(z, 0.5))
        >>> sim = PyroSimulator(model, box_prior([-1.0], [1.0]))
        >>> draws = sim.sample(torch.zeros(5, 1), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, sorted(draws.z)
        (torch.Size([5, 1]), ['x', 'z'])
        >>> torch.allclose(sim.joint_score(draws, torch.ones(5, 1)), draws.z["z"][:, None] - 1)
        True
    """

    def __init__(
        self,
        model: Callable,
        prior: Distribution,
        observed: str | Sequence[str] = "x",
        reference=None,
        name: str = "pyro",
        flatten: bool = False,
    ):
        _import_pyro()
        if not isinstance(flatten, bool):
            raise ValueError(f"flatten must be True or False; got {flatten!r}.")
        self.flatten = flatten
        self.model = model
        self.prior = prior
        self.observed = [observed] if isinstance(observed, str) else list(observed)
        if not self.observed:
            raise ValueError("observed must name at least one sample site of the model.")
        self.theta_dim = int(prior.event_shape[0]) if prior.event_shape else 1
        self.reference = torch.as_tensor(prior.mean if reference is None else reference, dtype=DTYPE).reshape(-1)
        self.name = name
        # two runs, so that sites shared by all runs are caught here and not at mining time
        probe = self.sample(self.reference.expand(2, -1), torch.Generator().manual_seed(0))
        self.x_shape = tuple(probe.x.shape[1:]) if probe.x.ndim > 2 else None  # None: a vector of x_dim
        self.x_dim = int(probe.x[0].numel())
        self.joint_log_prob(probe, self.reference.expand(2, -1))

    def config(self) -> dict:
        return {
            "model": getattr(self.model, "__qualname__", repr(self.model)),
            "observed": self.observed,
            "reference": self.reference.tolist(),
            "name": self.name,
            **({"flatten": True} if self.flatten else {}),
        }

    def sample(self, theta, generator=None) -> Draws:
        """Runs the model once per row of θ: (n, theta_dim) → Draws(x (n, x_dim) or (n, *x_shape), z), where
        z maps every sample site to its value with runs along the first dimension."""
        pyro = _import_pyro()
        theta = self.check_theta(theta).detach()
        n = theta.shape[0]
        seed = seed_from(generator)
        # Pyro draws from torch's global generator: seed it for this call only
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            trace = pyro.poutine.trace(self.model).get_trace(theta)
        z = {}
        for site in self._sites(trace):
            value_axis, _ = self._run_axes(site, n)
            value = site["value"].detach()
            if value.ndim == 0 or value.shape[value_axis] != n:
                raise _coupled(site["name"], "value", value.shape, n)
            z[site["name"]] = value.movedim(value_axis, 0)
        missing = [s for s in self.observed if s not in z]
        if missing:
            raise ValueError(
                f"observed site(s) {missing} are not sample sites of the model; its sample sites "
                f"are {list(z)}. Expose x with pyro.sample(name, dist.Delta(value))."
            )
        if len(self.observed) == 1 and z[self.observed[0]].ndim > 2 and not self.flatten:
            x = z[self.observed[0]].to(DTYPE)  # one x of more axes per run: its shape is kept
        else:
            x = torch.cat([z[s].reshape(n, -1).to(DTYPE) for s in self.observed], dim=1)
        shape = getattr(self, "x_shape", None)
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise ValueError(f"the observed site {self.observed[0]!r} has per-run shape {tuple(x.shape[1:])}, but "
                             f"{shape} when probed at the reference: the shape of one x must not change with θ.")
        return Draws(x, z)

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(x, z|θ) of n recorded runs replayed at θ (n, theta_dim) → (n,), differentiable."""
        pyro = _import_pyro()
        theta = self.check_theta(theta)
        n = theta.shape[0]
        z = draws.z
        if not isinstance(z, dict) or not z:
            raise ValueError("draws.z must be the dict of site values returned by PyroSimulator.sample.")
        for site_name, value in z.items():
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(
                    f"draws.z[{site_name!r}] has shape {tuple(value.shape)}, but θ has {n} rows: "
                    "replay each recorded run with its own row of θ."
                )
        replay = _replay_handler()(z, self._run_axes)
        trace = pyro.poutine.trace(replay(self.model)).get_trace(theta)
        unused = set(z) - set(trace.nodes)
        if unused:
            raise ValueError(
                f"replaying at the new θ skipped the recorded sites {sorted(unused)}: the model's "
                "sequence of sample sites must not depend on θ except through sampled values."
            )
        log_p = theta.new_zeros(n)
        for site in self._sites(trace):
            lp = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
            lp = pyro.distributions.util.scale_and_mask(lp, site["scale"], site["mask"])
            log_p = log_p + self._per_run(site, lp, n)
        return log_p

    # -- the plate structure -------------------------------------------------------------------

    @staticmethod
    def _sites(trace) -> list:
        """The sample sites of a trace (plates excluded); refuses pyro.param and subsampling."""
        sites = []
        for name, site in trace.nodes.items():
            if site["type"] == "param":
                raise ValueError(
                    f"the model calls pyro.param({name!r}): PyroSimulator does not support learnable "
                    "parameters. Make them components of θ or fixed constants of the model."
                )
            if site["type"] != "sample":
                continue
            if type(site["fn"]).__name__ == "_Subsample":
                if site["fn"].subsample_size not in (None, site["fn"].size):
                    raise ValueError(f"plate {name!r} subsamples; every run must be simulated in full.")
                continue
            sites.append(site)
        return sites

    @staticmethod
    def _run_axes(site, n: int) -> tuple[int, int]:
        """(axis of the value, axis of the log-prob) along which runs lie at a site.

        The outermost vectorized plate of size n indexes runs; without one, the leading batch dimension.
        """
        event_dim = len(site["fn"].event_shape)
        for frame in site["cond_indep_stack"]:
            if frame.dim is not None and frame.size == n:
                value_axis = frame.dim - event_dim
                if site["value"] is not None and site["value"].ndim < -value_axis:
                    raise ValueError(
                        f"site {site['name']!r} has value shape {tuple(site['value'].shape)}, but its "
                        f"distribution has batch shape {tuple(site['fn'].batch_shape)} and event shape "
                        f"{tuple(site['fn'].event_shape)} inside plate {frame.name!r}. Inside a plate, "
                        "write pyro.deterministic(name, value, event_dim=0)."
                    )
                return value_axis, frame.dim
        return 0, 0

    def _per_run(self, site, lp: Tensor, n: int) -> Tensor:
        """Sums a site's log-prob over every dimension but the runs: batch shape → (n,)."""
        _, axis = self._run_axes(site, n)
        if lp.ndim < (-axis if axis < 0 else axis + 1) or lp.shape[axis] != n:
            raise _coupled(site["name"], "log-prob", lp.shape, n)
        return lp.movedim(axis, 0).reshape(n, -1).sum(dim=1)


def _coupled(name: str, what: str, shape, n: int) -> ValueError:
    return ValueError(
        f"site {name!r} has {what} shape {tuple(shape)}, not one entry per run ({n} runs): a site "
        "shared by all runs couples them. Put every site inside "
        "`with pyro.plate('runs', theta.shape[0]):` or give it a leading batch dimension n."
    )


@cache
def _replay_handler() -> type:
    """A Pyro handler that fixes every sample site to its recorded value (built lazily: Pyro is optional)."""

    class Replay(_import_pyro().poutine.messenger.Messenger):
        def __init__(self, z: dict, run_axes: Callable):
            super().__init__()
            self.z = z
            self.run_axes = run_axes

        def _pyro_sample(self, msg) -> None:
            if type(msg["fn"]).__name__ == "_Subsample":
                return
            name = msg["name"]
            if name not in self.z:
                raise ValueError(
                    f"replaying at the new θ reached the sample site {name!r}, which the recorded run "
                    "does not have: the model's sequence of sample sites must not depend on θ."
                )
            stored = self.z[name]
            # runs were moved to the first dimension when recorded; put them back where the plate is
            value_axis, _ = self.run_axes({**msg, "value": None}, stored.shape[0])
            msg["value"] = stored.movedim(0, value_axis)
            msg["is_observed"] = True

    return Replay


__all__ = ["PyroSimulator"]
