"""PyroSimulator: a Pyro model of the Galton board replays to the built-in's exact gold."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

import goldmine as gm
from goldmine.mining import augment
from goldmine.simulators import Draws, GaltonBoard, Simulator, box_prior
from goldmine.simulators.base import DTYPE

pyro = pytest.importorskip("pyro")
dist = pytest.importorskip("pyro.distributions")

from goldmine.simulators.pyro import PyroSimulator  # noqa: E402


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_theta(n: int, seed: int) -> torch.Tensor:
    """n points of the Galton prior U(−1, 1), (n, 1), from a fixed seed."""
    return 2 * torch.rand(n, 1, generator=gen(seed), dtype=DTYPE) - 1


def normal_model(theta):
    with pyro.plate("runs", theta.shape[0]):
        z = pyro.sample("z", dist.Normal(theta[:, 0], 1.0))
        return pyro.sample("x", dist.Normal(z, 0.5))


def galton_model(theta):
    """The Galton board of goldmine.simulators.galton, written as a user would write it in Pyro."""
    n = theta.shape[0]
    with pyro.plate("runs", n):
        p = torch.full((n,), 15.0, dtype=theta.dtype)
        for level in range(20):
            s = math.sin(math.pi * level / 19)
            p_left = (1 - s) / 2 + s * torch.sigmoid(10 * theta[:, 0] * (2 * p / 30 - 1))
            if level % 2 == 1:  # the walls force the move
                p_left = torch.where(p == 0, 0.0, torch.where(p == 31, 1.0, p_left))
            left = pyro.sample(f"d{level}", dist.Bernoulli(p_left))
            p = p + (1 - left) if level % 2 == 0 else p - left
        # x is a function of the decisions: a Delta site has log-density 0 at the recorded slot
        return pyro.sample("x", dist.Delta(p))


def to_galton(z: dict) -> torch.Tensor:
    return torch.stack([z[f"d{level}"] for level in range(20)], dim=1) == 1


def to_pyro(draws: Draws) -> dict:
    z = {f"d{level}": draws.z[:, level].to(DTYPE) for level in range(20)}
    return {**z, "x": draws.x[:, 0]}


@pytest.fixture(scope="module")
def galton_pair():
    return PyroSimulator(galton_model, box_prior([-1.0], [1.0]), observed="x", reference=[0.0]), GaltonBoard()


# -- the Galton board ------------------------------------------------------------------------------


def test_galton_gold_matches_builtin(galton_pair):
    psim, gsim = galton_pair
    draws = psim.sample(uniform_theta(400, 12), generator=gen(1))
    assert draws.x.shape == (400, 1) and draws.x.dtype == torch.float64
    decisions = to_galton(draws.z)
    # right moves up on even levels, left moves down on odd levels
    assert torch.equal(15 + (~decisions[:, 0::2]).sum(1) - decisions[:, 1::2].sum(1), draws.x[:, 0].long())
    gdraws = Draws(draws.x, decisions)
    per_row = uniform_theta(400, 13)
    for theta in [torch.full((400, 1), t, dtype=DTYPE) for t in (-1.0, -0.55, 0.0, 0.3, 0.95)] + [per_row]:
        lp_pyro, lp_gold = psim.joint_log_prob(draws, theta), gsim.joint_log_prob(gdraws, theta)
        assert lp_pyro.shape == (400,)
        torch.testing.assert_close(lp_pyro, lp_gold, rtol=0, atol=1e-10)
        score_pyro = psim.joint_score(draws, theta)
        assert score_pyro.shape == (400, 1)
        torch.testing.assert_close(score_pyro, gsim.joint_score(gdraws, theta), rtol=0, atol=1e-10)
        torch.testing.assert_close(score_pyro, Simulator.joint_score(gsim, gdraws, theta), rtol=0, atol=1e-10)


def test_galton_mining_matches_builtin(galton_pair, tmp_path):
    psim, gsim = galton_pair
    theta = uniform_theta(200, 14)
    draws = psim.sample(theta, generator=gen(11))
    gold = augment(psim, draws, theta, psim.reference)  # runs under torch.no_grad, as in simulate()
    exact = augment(gsim, Draws(draws.x, to_galton(draws.z)), theta, gsim.reference)
    for key in ("log_r", "score", "score_ref"):
        torch.testing.assert_close(gold[key], exact[key], rtol=0, atol=1e-10)
    data = gm.simulate(psim, 64, tmp_path / "pyro.h5", seed=0, progress=False)
    assert len(data) == 64 and {"log_r", "score", "score_ref"} <= set(data.fields)


def test_galton_replays_builtin_draws(galton_pair):
    psim, gsim = galton_pair
    gdraws = gsim.sample(torch.full((300, 1), -0.4, dtype=DTYPE), generator=gen(2))
    draws = Draws(gdraws.x, to_pyro(gdraws))
    theta = torch.linspace(-1, 1, 300, dtype=DTYPE)[:, None]
    for method in ("joint_log_prob", "joint_score"):
        mine, exact = getattr(psim, method)(draws, theta), getattr(gsim, method)(gdraws, theta)
        torch.testing.assert_close(mine, exact, rtol=0, atol=1e-10)


@pytest.mark.parametrize("theta", [-0.6, 0.5])
def test_galton_histogram_matches_exact(galton_pair, theta):
    psim, gsim = galton_pair
    n = 20_000
    x = psim.sample(torch.full((n, 1), theta, dtype=DTYPE), generator=gen(3)).x[:, 0]
    counts = torch.bincount(x.long(), minlength=32).numpy()
    slots = torch.arange(32.0)[:, None]
    expected = n * gsim.log_prob(slots, torch.full((32, 1), theta, dtype=DTYPE)).exp().numpy()
    assert counts[expected == 0].sum() == 0
    big = expected >= 5  # pool the sparse tails into one bin so the chi-square approximation holds
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


# -- sampling ---------------------------------------------------------------------------------------


def test_reproducible_with_seeded_generator(galton_pair):
    psim, _ = galton_pair
    theta = torch.full((200, 1), 0.2, dtype=DTYPE)
    state = torch.get_rng_state()
    a, b, c = (psim.sample(theta, generator=gen(s)) for s in (7, 7, 8))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert torch.equal(a.x, b.x) and all(torch.equal(a.z[k], b.z[k]) for k in a.z)
    assert not torch.equal(to_galton(a.z), to_galton(c.z))


def test_normal_model_gold_is_analytic():
    sim = PyroSimulator(normal_model, box_prior([-2.0], [2.0]))
    assert sim.theta_dim == 1 and sim.x_dim == 1 and sim.reference.tolist() == [0.0]
    n = 4000
    theta = torch.full((n, 1), 0.7, dtype=DTYPE)
    draws = sim.sample(theta, generator=gen(4))
    assert set(draws.z) == {"z", "x"} and torch.equal(draws.x[:, 0], draws.z["x"])
    theta2 = torch.linspace(-2, 2, n, dtype=DTYPE)[:, None]
    z, x = draws.z["z"], draws.z["x"]
    normal = torch.distributions.Normal
    exact = normal(theta2[:, 0], 1.0).log_prob(z) + normal(z, 0.5).log_prob(x)
    torch.testing.assert_close(sim.joint_log_prob(draws, theta2), exact, rtol=0, atol=1e-12)
    score = sim.joint_score(draws, theta)
    torch.testing.assert_close(score, z[:, None] - 0.7, rtol=0, atol=1e-12)
    # the joint score has mean zero at the θ that drew the runs
    assert abs(score.mean()) < 5 * score.std() / math.sqrt(n)
    assert json.loads(json.dumps(sim.config()))["observed"] == ["x"]


def test_several_observed_sites_in_order():
    def model(theta):
        with pyro.plate("runs", theta.shape[0]):
            a = pyro.sample("a", dist.Normal(theta[:, 0], 1.0))
            b = pyro.sample("b", dist.Normal(a[:, None] + theta, 1.0).to_event(1))
            return a, b

    sim = PyroSimulator(model, box_prior([-1.0, -1.0], [1.0, 1.0]), observed=["b", "a"])
    assert sim.x_dim == 3
    draws = sim.sample(torch.zeros(5, 2), generator=gen(5))
    assert draws.z["b"].shape == (5, 2)
    assert torch.equal(draws.x, torch.cat([draws.z["b"], draws.z["a"][:, None]], dim=1))


def test_runs_are_the_outer_plate_even_when_an_inner_plate_has_size_n():
    def model(theta):
        with pyro.plate("runs", theta.shape[0], dim=-1):
            mu = pyro.sample("mu", dist.Normal(theta[:, 0], 1.0))
            with pyro.plate("hits", 3, dim=-2):
                return pyro.sample("x", dist.Normal(mu, theta[:, 1]))  # batch shape (3, n)

    sim = PyroSimulator(model, box_prior([-1.0, 0.5], [1.0, 2.0]))
    assert sim.x_dim == 3
    theta = torch.tensor([[0.0, 1.0], [0.5, 1.5], [-0.5, 0.7]], dtype=DTYPE)  # n = 3 = inner plate size
    draws = sim.sample(theta, generator=gen(6))
    assert draws.z["x"].shape == (3, 3) and torch.equal(draws.x, draws.z["x"])
    other = theta.flip(0)
    mu, x = draws.z["mu"], draws.z["x"]
    exact = torch.distributions.Normal(other[:, 0], 1.0).log_prob(mu)
    exact = exact + torch.distributions.Normal(mu[:, None], other[:, 1:]).log_prob(x).sum(1)
    torch.testing.assert_close(sim.joint_log_prob(draws, other), exact, rtol=0, atol=1e-12)


def test_model_without_plates_uses_the_leading_batch_dimension():
    def model(theta):
        z = pyro.sample("z", dist.Normal(theta, 1.0).to_event(1))
        return pyro.sample("x", dist.Normal(z.sum(-1), 1.0))

    sim = PyroSimulator(model, box_prior([-1.0, -1.0], [1.0, 1.0]))
    draws = sim.sample(torch.zeros(4, 2), generator=gen(7))
    theta = torch.full((4, 2), 0.5, dtype=DTYPE)
    torch.testing.assert_close(sim.joint_score(draws, theta), draws.z["z"] - 0.5, rtol=0, atol=1e-12)


def test_discrete_latents():
    mus = torch.tensor([-2.0, 0.0, 3.0], dtype=DTYPE)

    def model(theta):
        with pyro.plate("runs", theta.shape[0]):
            logits = torch.cat([theta, theta.new_zeros(theta.shape[0], 1)], dim=1)  # components 0, 1, 2
            k = pyro.sample("k", dist.Categorical(logits=logits))
            return pyro.sample("x", dist.Normal(mus[k], 1.0))

    sim = PyroSimulator(model, box_prior([-1.0, -1.0], [1.0, 1.0]))
    draws = sim.sample(torch.zeros(500, 2), generator=gen(8))
    k = draws.z["k"]
    assert draws.x.dtype == torch.float64 and set(k.tolist()) == {0, 1, 2}
    theta = torch.tensor([[0.3, -0.8]], dtype=DTYPE).expand(500, 2)
    logits = torch.cat([theta, torch.zeros(500, 1, dtype=DTYPE)], dim=1)
    exact = logits.log_softmax(1).gather(1, k[:, None])[:, 0]
    exact = exact + torch.distributions.Normal(mus[k], 1.0).log_prob(draws.x[:, 0])
    torch.testing.assert_close(sim.joint_log_prob(draws, theta), exact, rtol=0, atol=1e-12)
    score = torch.nn.functional.one_hot(k, 3).to(DTYPE)[:, :2] - logits.softmax(1)[:, :2]
    torch.testing.assert_close(sim.joint_score(draws, theta), score, rtol=0, atol=1e-12)


def test_deterministic_site_as_x():
    def model(theta, event_dim=0):
        with pyro.plate("runs", theta.shape[0]):
            z = pyro.sample("z", dist.Normal(theta[:, 0], 1.0))
            return pyro.deterministic("x", z**2, event_dim=event_dim)

    sim = PyroSimulator(model, box_prior([-1.0], [1.0]))
    draws = sim.sample(torch.zeros(6, 1), generator=gen(9))
    torch.testing.assert_close(draws.x[:, 0], draws.z["z"] ** 2)
    torch.testing.assert_close(sim.joint_score(draws, torch.ones(6, 1))[:, 0], draws.z["z"] - 1)
    with pytest.raises(ValueError, match="event_dim=0"):
        PyroSimulator(lambda t: model(t, event_dim=None), box_prior([-1.0], [1.0]))


# -- errors -----------------------------------------------------------------------------------------


def test_pyro_param_is_refused():
    def model(theta):
        scale = pyro.param("scale", torch.tensor(1.0, dtype=DTYPE))
        with pyro.plate("runs", theta.shape[0]):
            return pyro.sample("x", dist.Normal(theta[:, 0], scale))

    try:
        with pytest.raises(ValueError, match=r"pyro.param\('scale'\).*θ"):
            PyroSimulator(model, box_prior([-1.0], [1.0]))
    finally:
        pyro.clear_param_store()


def test_site_shared_by_all_runs_is_refused():
    def model(theta):
        shift = pyro.sample("shift", dist.Normal(0.0, 1.0))
        with pyro.plate("runs", theta.shape[0]):
            return pyro.sample("x", dist.Normal(theta[:, 0] + shift, 1.0))

    with pytest.raises(ValueError, match="'shift'.*pyro.plate"):
        PyroSimulator(model, box_prior([-1.0], [1.0]))


def test_missing_observed_site():
    with pytest.raises(ValueError, match=r"\['y'\].*\['z', 'x'\]"):
        PyroSimulator(normal_model, box_prior([-1.0], [1.0]), observed="y")


def test_bad_theta_and_mismatched_draws(galton_pair):
    psim, _ = galton_pair
    with pytest.raises(ValueError, match="shape"):
        psim.sample(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        psim.sample(torch.tensor([[0.0], [math.nan]]))
    with pytest.raises(ValueError, match="outside the support"):
        psim.sample(torch.tensor([[1.5]]))
    draws = psim.sample(torch.zeros(4, 1), generator=gen(10))
    with pytest.raises(ValueError, match="3 rows"):
        psim.joint_log_prob(Draws(draws.x[:3], draws.z), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="dict"):
        psim.joint_log_prob(Draws(draws.x, None), torch.zeros(4, 1))


def test_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyro", None)  # makes `import pyro` fail
    with pytest.raises(ImportError, match=r"pip install goldmine\[pyro\]"):
        PyroSimulator(normal_model, box_prior([-1.0], [1.0]))


@pytest.mark.slow
def test_goldmine_imports_without_pyro():
    code = "import sys; sys.modules['pyro'] = None; import goldmine, goldmine.simulators.pyro; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


PATTERN = torch.linspace(-1, 1, 8, dtype=DTYPE)[:, None] * torch.linspace(0.5, 1.5, 8, dtype=DTYPE)[None, :]


def image_model(theta):
    """Images (1, 8, 8): a latent brightness z ~ N(θ, 1) times a fixed pattern, plus pixel noise."""
    with pyro.plate("runs", theta.shape[0]):
        z = pyro.sample("z", dist.Normal(theta[:, 0], 1.0))
        mean = z[:, None, None, None] * PATTERN
        return pyro.sample("x", dist.Normal(mean, 0.5).to_event(3))


def test_an_observed_site_of_images_keeps_its_shape_through_simulate_and_an_embedding(tmp_path):
    """x of shape (n, 1, 8, 8) from a Pyro model: recorded as x_shape, stored so by simulate, with exact gold,
    trained through the cnn embedding and read back as images; flatten=True gives flat rows as before."""
    sim = PyroSimulator(image_model, box_prior([-1.0], [1.0]))
    assert sim.x_shape == (1, 8, 8) and sim.x_dim == 64
    draws = sim.sample(torch.full((6, 1), 0.3, dtype=DTYPE), generator=gen(11))
    assert draws.x.shape == (6, 1, 8, 8) and torch.equal(draws.x, draws.z["x"])
    torch.testing.assert_close(sim.joint_score(draws, torch.full((6, 1), 0.3, dtype=DTYPE)),
                               draws.z["z"][:, None] - 0.3, rtol=0, atol=1e-12)
    flat = PyroSimulator(image_model, box_prior([-1.0], [1.0]), flatten=True)
    assert flat.x_shape is None and flat.x_dim == 64 and flat.config()["flatten"] is True
    assert flat.sample(torch.zeros(3, 1), generator=gen(11)).x.shape == (3, 64)

    data = gm.simulate(sim, 128, tmp_path / "images.h5", seed=0, progress=False)
    assert data.x_shape == (1, 8, 8) and data.meta["x_shape"] == [1, 8, 8]
    rows = data.tensors(["x", "score", "label"])
    assert rows["x"].shape == (128, 1, 8, 8) and torch.isfinite(rows["score"]).all()
    est = gm.RatioEstimator("alices", embedding={"name": "cnn", "channels": [4], "out": 4}, hidden=(16,),
                            epochs=1, progress=False).fit(data)
    assert est.x_shape_ == (1, 8, 8)
    assert est.log_ratio(rows["x"][:5], torch.zeros(5, 1)).shape == (5,)
    est.save(tmp_path / "model")
    again = gm.load(tmp_path / "model")
    images, theta = rows["x"][:5], torch.zeros(5, 1)
    assert torch.equal(again.log_ratio(images, theta), est.log_ratio(images, theta))
