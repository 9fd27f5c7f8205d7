"""Tests of the Lotka–Volterra simulator: the event path, its replayed density and the gold identities.

p(x|θ) is intractable, so the gold is checked through identities that hold for any joint density:
E_{z~p(·|θ)}[t(x, z|θ)] = 0 and E_{z~p(·|θ_ref)}[r(x, z|θ, θ_ref)] = 1, by Monte Carlo within 5
standard errors estimated from the same sample. The sufficient statistics are checked against the
replay of the recorded path on the same runs, and the compiled engine against the torch engine
(the original algorithm) by two-sample tests.
"""

import math

import pytest
import scipy.stats
import torch

from goldmine.simulators.base import DTYPE, Draws, Simulator
from goldmine.simulators import lotka_volterra
from goldmine.simulators.lotka_volterra import DURATION, STATS, X_NAMES, LotkaVolterra, summarize

ENGINES = ["torch"] + (["numba"] if lotka_volterra.default_engine() == "numba" else [])

N_REF = 400
EXTINCT = (-4.9, 1.9, -4.9, 1.9)  # predators die fast, prey are eaten fast and hardly reproduce
PREY_ALONE = (-4.9, 0.5, -2.0, -4.9)  # predators die out, then the prey is a pure birth process
SLOW_END = (-4.9, -4.9, -4.9, 1.9)  # prey eaten at once, then predators die off slowly


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rows(theta, n: int) -> torch.Tensor:
    return torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1).repeat(n, 1)


@pytest.fixture(scope="module")
def sim():
    return LotkaVolterra(record_path=True)


@pytest.fixture(scope="module")
def ref_runs(sim):
    return sim.sample(rows(sim.reference, N_REF), generator=gen(0))


def take(draws: Draws, idx) -> Draws:
    return Draws(draws.x[idx], {k: v[idx] for k, v in draws.z.items()}, draws.stats[idx])


def assert_mean_zero(values: torch.Tensor, what: str):
    n = values.shape[0]
    mean, se = values.mean(dim=0), values.std(dim=0) / math.sqrt(n)
    assert bool((mean.abs() < 5 * se).all()), f"{what}: mean {mean.tolist()} vs 5 SE {(5 * se).tolist()}"


def test_shapes_and_latent_path(sim, ref_runs):
    x, z = ref_runs.x, ref_runs.z
    cap = sim.max_events
    assert x.shape == (N_REF, 9) and x.dtype == DTYPE and len(X_NAMES) == 9
    assert z["times"].shape == (N_REF, cap) and z["times"].dtype == DTYPE
    assert z["events"].shape == (N_REF, cap) and z["events"].dtype == torch.int8
    assert z["n_events"].shape == (N_REF,) and z["overflow"].dtype == torch.bool
    slot = torch.arange(cap)
    recorded = slot < z["n_events"][:, None]
    assert torch.equal(z["events"] >= 0, recorded)
    assert bool((z["events"][recorded] <= 3).all())
    assert bool((z["times"][~recorded] == DURATION).all())  # padding
    assert bool((z["times"].diff(dim=1) >= 0).all()) and bool((z["times"] > 0).all())
    assert torch.equal(z["overflow"], z["n_events"] == cap)
    # x is NaN exactly for the runs that hit the cap (at θ_ref: predators gone, prey exploding)
    assert torch.equal(x.isnan().any(dim=1), z["overflow"]) and bool(x[~z["overflow"]].isfinite().all())
    assert z["overflow"].double().mean() < 0.03
    series = sim.series(ref_runs)
    assert series.shape == (N_REF, 151, 2)
    assert bool((series[:, 0] == torch.tensor([50.0, 100.0], dtype=DTYPE)).all())
    assert bool((series >= 0).all())
    done = ~z["overflow"]
    assert torch.allclose(summarize(series[done]), x[done])


@pytest.mark.parametrize("engine", ENGINES)
def test_series_replays_events(engine):
    """The recorded grid equals a direct per-run replay of the events on the grid."""
    sim = LotkaVolterra(max_events=3000, record_path=True, engine=engine)
    draws = sim.sample(rows(sim.reference, 3), generator=gen(5))
    series = sim.series(draws)
    for i in range(3):
        n = int(draws.z["n_events"][i])
        t, j = draws.z["times"][i, :n], draws.z["events"][i, :n].long()
        for g in (0, 1, 37, 150):
            passed = j[t <= 0.2 * g]
            x = 50 + int((passed == 0).sum() - (passed == 1).sum())
            y = 100 + int((passed == 2).sum() - (passed == 3).sum())
            assert series[i, g].tolist() == [x, y]


@pytest.mark.parametrize("engine", ENGINES)
def test_reproducible_with_seed(engine):
    sim = LotkaVolterra(max_events=2000, record_path=True, engine=engine)
    theta = rows(sim.reference, 5)
    a, b = sim.sample(theta, generator=gen(7)), sim.sample(theta, generator=gen(7))
    assert torch.equal(a.x.nan_to_num(-1.0), b.x.nan_to_num(-1.0)) and torch.equal(a.stats, b.stats)
    assert all(torch.equal(a.z[k], b.z[k]) for k in a.z)
    c = sim.sample(theta, generator=gen(8))
    assert not torch.equal(a.z["times"], c.z["times"])
    # recording the path changes nothing else
    d = LotkaVolterra(max_events=2000, engine=engine).sample(theta, generator=gen(7))
    assert set(d.z) == {"n_events", "overflow"} and torch.equal(d.stats, a.stats)
    assert torch.equal(d.x.nan_to_num(-1.0), a.x.nan_to_num(-1.0)) and torch.equal(d.z["n_events"], a.z["n_events"])


def test_joint_score_matches_autograd_and_finite_differences(sim, ref_runs):
    extinct = sim.sample(rows(EXTINCT, 2), generator=gen(1))
    prey = sim.sample(rows(PREY_ALONE, 2), generator=gen(2))
    short = LotkaVolterra(max_events=300, record_path=True).sample(rows(sim.reference, 2), generator=gen(3))
    pad = sim.max_events - 300
    short = Draws(short.x, {
        "times": torch.nn.functional.pad(short.z["times"], (0, pad), value=DURATION),
        "events": torch.nn.functional.pad(short.z["events"], (0, pad), value=-1),
        "n_events": short.z["n_events"], "overflow": short.z["overflow"],
    })  # fmt: skip
    parts = [take(ref_runs, slice(0, 4)), extinct, prey, short]
    z = {k: torch.cat([p.z[k] for p in parts]) for k in parts[0].z}
    draws = Draws(torch.cat([p.x for p in parts]), z)  # without stats: T from the path
    assert bool(draws.z["overflow"][-2:].all()) and not bool(draws.z["overflow"][4:6].any())
    n = draws.x.shape[0]
    # replay at points other than those the runs were drawn at
    direction = torch.tensor([1.0, -1.0, 0.5, 1.0], dtype=DTYPE)
    theta = sim.reference + torch.linspace(-0.3, 0.3, n, dtype=DTYPE)[:, None] * direction
    fast = sim.joint_score(draws, theta)
    auto = Simulator.joint_score(sim, draws, theta)
    assert torch.allclose(fast, auto, rtol=1e-9, atol=1e-7)
    eps = 1e-5
    log_p = lambda th: sim.joint_log_prob(draws, th)  # noqa: E731
    fd = torch.stack([(log_p(theta + e) - log_p(theta - e)) / (2 * eps) for e in eps * torch.eye(4)], dim=1)
    assert torch.allclose(fast, fd, rtol=1e-5, atol=1e-4)
    assert bool(sim.joint_log_prob(draws, theta).isfinite().all())


def test_mean_joint_score_is_zero_at_reference(sim, ref_runs):
    assert_mean_zero(sim.joint_score(ref_runs, rows(sim.reference, N_REF)), "score at θ_ref")


@pytest.mark.parametrize(
    "theta, cap, n",
    [(None, 5500, 400), (PREY_ALONE, 4000, 400), (SLOW_END, 20_000, 1000)],
    ids=["reference-capped", "prey-alone-capped", "slow-end"],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_mean_joint_score_is_zero_elsewhere(theta, cap, n, engine):
    """With a cap near the median length about half the runs overflow: their density is that of
    the recorded prefix, and the identity must still hold (it fails with a survival term on
    overflowed runs). PREY_ALONE goes through the pure-birth fill. SLOW_END ends with a long quiet
    interval, where the survival term of complete runs matters (the identity fails without it)."""
    sim = LotkaVolterra(max_events=cap, engine=engine)
    theta = rows(sim.reference if theta is None else theta, n)
    draws = sim.sample(theta, generator=gen(11))
    overflowed = draws.z["overflow"].double().mean()
    if cap < 20_000:
        assert 0.1 < overflowed < 0.9
    else:
        assert overflowed == 0
    assert_mean_zero(sim.joint_score(draws, theta), "score")


def rescaled_waits(theta: torch.Tensor, z: dict) -> torch.Tensor:
    """a(s_{k−1})·(t_k − t_{k−1}) of every recorded event, replayed here independently of the
    simulator: iid Exp(1) by the time-rescaling theorem (up to O(1/N) from stopping at T)."""
    width = int(z["n_events"].max())
    j, t = z["events"][:, :width].long(), z["times"][:, :width]
    zero = torch.zeros(j.shape[0], 1, dtype=torch.long)
    x = 50 + torch.cat([zero, ((j == 0).long() - (j == 1).long()).cumsum(dim=1)[:, :-1]], dim=1)
    y = 100 + torch.cat([zero, ((j == 2).long() - (j == 3).long()).cumsum(dim=1)[:, :-1]], dim=1)
    c = theta.exp()
    total = (c[:, :1] + c[:, 3:]) * x * y + c[:, 1:2] * x + c[:, 2:3] * y
    wait = t.diff(dim=1, prepend=torch.zeros(j.shape[0], 1, dtype=DTYPE))
    return (total * wait)[j >= 0]


@pytest.mark.parametrize("engine", ENGINES)
def test_waiting_times_are_exponential(engine, sim, ref_runs):
    """KS test of the rescaled waiting times against Exp(1), in the Gillespie steps (θ_ref) and in
    the pure-birth fill of the torch engine (PREY_ALONE): catches waits with the right mean but the
    wrong law."""
    prey_theta = rows(PREY_ALONE, 50)
    prey = LotkaVolterra(record_path=True, engine=engine).sample(prey_theta, generator=gen(9))
    if engine != sim.engine:
        ref_runs = LotkaVolterra(record_path=True, engine=engine).sample(rows(sim.reference, 100), generator=gen(0))
    for theta, draws in ((rows(sim.reference, 100), take(ref_runs, slice(0, 100))), (prey_theta, prey)):
        waits = rescaled_waits(theta, draws.z)
        assert waits.numel() > 100_000
        assert scipy.stats.kstest(waits.numpy(), "expon").pvalue > 1e-3


def test_mean_joint_ratio_is_one(sim, ref_runs):
    """E_{θ_ref}[r(x, z|θ, θ_ref)] = 1 for θ near θ_ref (var log r ≈ 0.5: heavy tails stay tame)."""
    ref = rows(sim.reference, N_REF)
    for delta in ([0.01, -0.01, 0.01, -0.01], [-0.015, 0.0, 0.01, 0.005]):
        theta = ref + torch.tensor(delta, dtype=DTYPE)
        log_r = sim.joint_log_prob(ref_runs, theta) - sim.joint_log_prob(ref_runs, ref)
        assert_mean_zero((log_r.exp() - 1)[:, None], f"ratio at δ = {delta}")


@pytest.mark.parametrize("engine", ENGINES)
def test_small_cap_overflows(engine):
    sim = LotkaVolterra(max_events=50, record_path=True, engine=engine)
    theta = rows(sim.reference, 4)
    draws = sim.sample(theta, generator=gen(4))
    assert bool(draws.z["overflow"].all()) and bool((draws.z["n_events"] == 50).all())
    assert bool(draws.x.isnan().all())
    assert bool(sim.joint_log_prob(draws, theta).isfinite().all())
    # the prefix has no survival term: its density is the product of the 50 event densities
    prefix = sim.joint_log_prob(draws, theta)
    complete = Draws(draws.x, {**draws.z, "overflow": torch.zeros(4, dtype=torch.bool)})
    assert bool((sim.path_log_prob(complete, theta) < prefix).all())


def test_extinction(sim):
    draws = sim.sample(rows(EXTINCT, 20), generator=gen(6))
    series = sim.series(draws)
    assert not bool(draws.z["overflow"].any())
    assert bool((series[:, -1] == 0).all())  # both populations gone, and they stay gone
    assert bool((draws.z["n_events"] < 1000).all())
    assert bool(draws.x.isfinite().all())
    gone = (series == 0).all(dim=2)
    assert bool((gone[:, 1:] >= gone[:, :-1]).all())
    assert bool(sim.joint_log_prob(draws, rows(EXTINCT, 20)).isfinite().all())
    # constant series: log(var + 1) = 0 and the correlations are 0, not NaN
    flat = summarize(torch.full((1, 151, 2), 7.0, dtype=DTYPE))
    assert flat.tolist() == [[math.log(8.0), math.log(8.0), 0, 0, 0, 0, 0, 0, 0]]


def test_reference_runs_oscillate(sim, ref_runs):
    """Where both species survive, they oscillate like the deterministic Lotka–Volterra cycle:
    around X* = c₂/c₃ = 100, Y* = c₁/c₀ = 50, with period 2π/√(c₁c₂) ≈ 8.9 (≈ 6.7 crossings of the
    mean in 30 time units), smooth on the 0.2 grid, and with the predator peak lagging the prey
    peak by a quarter period ≈ 2.2."""
    series = sim.series(ref_runs)
    alive = (series[:, -1] > 0).all(dim=1) & ~ref_runs.z["overflow"]
    assert alive.sum() > 100
    s, x = series[alive], ref_runs.x[alive]
    med = x.median(dim=0).values
    assert 85 < med[0].expm1() < 115 and 42 < med[1].expm1() < 58  # x holds log(mean + 1)
    assert bool((med[4:8] > 0.85).all()) and bool((med[4:8] < 1).all())
    assert bool((med[[4, 6]] > med[[5, 7]]).all())  # correlation decays with the lag
    u = s - s.mean(dim=1, keepdim=True)
    crossings = ((u[:, 1:] * u[:, :-1]) < 0).sum(dim=1).double().median(dim=0).values  # (X, Y)
    assert bool((crossings >= 4).all()) and bool((crossings <= 10).all())
    lagged = torch.stack([(u[:, : 151 - k, 1] * u[:, k:, 0]).mean(dim=1) for k in range(40)], dim=1)
    lag = 0.2 * lagged.argmax(dim=1).double().median()
    assert 1.2 < lag < 3.2


def test_bad_input(sim, ref_runs):
    with pytest.raises(ValueError, match="shape"):
        sim.sample(torch.zeros(2, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"\(4,\) for one point"):
        sim.sample(sim.reference[:3])
    with pytest.raises(ValueError, match="NaN"):
        sim.sample(torch.tensor([[math.nan, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="outside the support"):
        sim.sample(torch.tensor([[0.0, 0.0, 0.0, 2.5]]))
    with pytest.raises(ValueError, match="outside the support"):
        sim.joint_log_prob(ref_runs, rows([-6.0, 0, 0, 0], N_REF))
    with pytest.raises(ValueError, match="runs.*but theta has"):
        sim.joint_log_prob(ref_runs, rows(sim.reference, 3))
    with pytest.raises(ValueError, match="record_path=True"):
        sim.joint_score(Draws(torch.zeros(2, 9), None), rows(sim.reference, 2))
    with pytest.raises(ValueError, match="record_path=True"):
        LotkaVolterra().series(LotkaVolterra(max_events=10).sample(rows(sim.reference, 2)))
    with pytest.raises(ValueError, match="engine"):
        LotkaVolterra(engine="fortran")
    with pytest.raises(ValueError, match="record_path"):
        LotkaVolterra(record_path=1)
    for cap in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_events"):
            LotkaVolterra(max_events=cap)


def test_config_round_trip():
    sim = LotkaVolterra(max_events=1234)
    assert LotkaVolterra(**sim.config()).config() == {"max_events": 1234}
    assert repr(sim) == "LotkaVolterra(max_events=1234)"
    assert LotkaVolterra(record_path=True).config() == {"max_events": 20_000, "record_path": True}
    assert sim.prior.sample((5,)).shape == (5, 4) and sim.reference.shape == (4,)
    assert torch.allclose(sim.reference.exp(), torch.tensor([0.01, 0.5, 1.0, 0.01], dtype=DTYPE))


@pytest.mark.parametrize("engine", [e if e == "numba" else pytest.param(e, marks=pytest.mark.slow) for e in ENGINES])
def test_statistics_give_the_gold_of_path_replay(engine):
    """On the same runs (same seed), η(θ)·T and the hand-written score from the statistics equal the
    replay of the recorded path event by event, to float64 precision: log p, log r at θ_ref and t,
    for complete, extinct, prey-alone and overflowed runs, at θ other than where they were drawn."""
    cases = [(LotkaVolterra(record_path=True, engine=engine), rows(LotkaVolterra().reference, 20)),
             (LotkaVolterra(record_path=True, engine=engine), torch.rand(20, 4, generator=gen(19), dtype=DTYPE) * 7 - 5),
             (LotkaVolterra(record_path=True, engine=engine), rows(EXTINCT, 5)),
             (LotkaVolterra(record_path=True, engine=engine), rows(PREY_ALONE, 5)),
             (LotkaVolterra(max_events=500, record_path=True, engine=engine), rows(LotkaVolterra().reference, 5))]
    for i, (sim, drawn_at) in enumerate(cases):
        draws = sim.sample(drawn_at, generator=gen(20 + i))
        assert draws.stats.shape == (drawn_at.shape[0], len(STATS)) and draws.stats.dtype == DTYPE
        # the same seed without the path: the same statistics and x
        bare = LotkaVolterra(max_events=sim.max_events, engine=engine).sample(drawn_at, generator=gen(20 + i))
        assert torch.equal(bare.stats, draws.stats) and torch.equal(bare.x.nan_to_num(-1), draws.x.nan_to_num(-1))
        theta = drawn_at + 0.1 * torch.randn(drawn_at.shape, generator=gen(40 + i), dtype=DTYPE)
        theta = theta.clamp(-5, 2)
        ref = sim.reference.expand_as(theta)
        path = Draws(draws.x, draws.z)  # no stats: joint_* recompute them from the path
        replay_lp, stats_lp = sim.path_log_prob(draws, theta), sim.joint_log_prob(bare, theta)
        scale = replay_lp.abs().clamp(min=1.0)
        assert bool(((stats_lp - replay_lp).abs() <= 1e-12 * scale * sim.max_events ** 0.5).all())
        log_r = sim.joint_log_prob(bare, theta) - sim.joint_log_prob(bare, ref)
        replay_r = sim.path_log_prob(draws, theta) - sim.path_log_prob(draws, ref)
        assert bool(((log_r - replay_r).abs() <= 1e-12 * scale * sim.max_events ** 0.5).all())
        for th in (theta, ref):
            replay_t = sim.path_score(draws, th)
            for t in (sim.joint_score(bare, th), sim.joint_score(path, th), Simulator.joint_score(sim, bare, th)):
                assert torch.allclose(t, replay_t, rtol=1e-10, atol=1e-8 * float(replay_t.abs().max()))
        assert torch.allclose(sim.sufficient_statistics(path), draws.stats, rtol=1e-12, atol=1e-9)


def two_sample_z(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(mean a − mean b) / its standard error, per column."""
    se = (a.var(dim=0) / a.shape[0] + b.var(dim=0) / b.shape[0]).sqrt()
    return (a.mean(dim=0) - b.mean(dim=0)) / se.clamp(min=1e-300)


@pytest.mark.slow
@pytest.mark.skipif(len(ENGINES) < 2, reason="numba is not installed")
@pytest.mark.parametrize("where", ["reference", "prior"])
def test_engines_draw_the_same_law(where):
    """The compiled engine against the torch engine (the original algorithm) at fixed seeds: the
    means of x, of the statistics T and of the overflow indicator agree within 4.5 standard errors
    (15 columns; two-sided 4.5 SE has p ≈ 7·10⁻⁶ each), and two-sample KS tests on the event counts
    and on each component of x find no difference (p > 10⁻³)."""
    n = 600
    theta = rows(LotkaVolterra().reference, n)
    if where == "prior":
        theta = torch.rand(n, 4, generator=gen(50), dtype=DTYPE) * 7 - 5
    a = LotkaVolterra(engine="torch").sample(theta, generator=gen(51))
    b = LotkaVolterra(engine="numba").sample(theta, generator=gen(52))
    overflow = torch.stack([a.z["overflow"], b.z["overflow"]]).to(DTYPE)
    assert abs(float(two_sample_z(overflow[0, :, None], overflow[1, :, None]))) < 4.5 or overflow.sum() == 0
    done = ~a.z["overflow"] & ~b.z["overflow"]  # the same θ rows on both sides
    za = torch.cat([a.x, a.stats], dim=1)[done]
    zb = torch.cat([b.x, b.stats], dim=1)[done]
    varying = za.std(dim=0) > 0
    z = two_sample_z(za[:, varying], zb[:, varying])
    assert bool((z.abs() < 4.5).all()), f"z-scores {z.tolist()}"
    for col in [*range(9), 9]:
        pvalue = scipy.stats.ks_2samp(za[:, col].numpy(), zb[:, col].numpy()).pvalue
        assert pvalue > 1e-3, f"column {col}: KS p = {pvalue}"


def test_without_numba_the_torch_engine_runs(monkeypatch):
    monkeypatch.setattr(lotka_volterra, "_KERNEL", [None])
    assert lotka_volterra.default_engine() == "torch"
    sim = LotkaVolterra(max_events=300)
    draws = sim.sample(rows(sim.reference, 3), generator=gen(1))
    assert draws.stats.shape == (3, 8) and sim.joint_score(draws, rows(sim.reference, 3)).shape == (3, 4)
    with pytest.raises(ImportError, match=r"goldmine\[fast\]"):
        LotkaVolterra(engine="numba")


def test_reference_reaches_little_of_the_prior_predictive(ref_runs):
    """The class docstring's warning about θ_ref's anchor: a run whose prey is gone by the first recorded
    point has the series (100, 0, 0, ...) and log(mean Y + 1) = log(100/151 + 1) exactly; none of the
    runs at θ_ref does that, most runs at θ ~ prior do (0.66 in 3,662 finite runs; with 400 runs the
    fraction's standard error is below 0.025, so 0.5 lies more than 6 of them below)."""
    sim = LotkaVolterra(max_events=5000)  # the runs that would need more events are not this test's
    gone = math.log1p(100 / 151)
    theta = torch.rand(400, 4, generator=gen(60), dtype=DTYPE) * 7 - 5
    x = sim.sample(theta, generator=gen(61)).x
    x = x[x.isfinite().all(dim=1)]
    prior_gone = ((x[:, 1] - gone).abs() < 1e-9).double().mean()
    assert prior_gone > 0.5
    ref = ref_runs.x[ref_runs.x.isfinite().all(dim=1)]
    assert not bool(((ref[:, 1] - gone).abs() < 1e-9).any())
    # the means on the log scale: x[:, :2] = log(mean + 1) of the recorded series
    series = torch.tensor([[100.0] + [0.0] * 150, [50.0] * 151], dtype=DTYPE).T[None]
    assert summarize(series)[0, :2].tolist() == [math.log1p(100 / 151), math.log1p(50.0)]


def test_the_study_splits_the_thetas_whose_prey_is_gone_at_once():
    """benchmarks/lotka_volterra.py: `prey_gone_at_once` marks a θ* by its observed x (runs at a θ whose prey is
    eaten at once, SLOW_END, and at θ_ref), and `summarize` reports coverage and MSE over each part."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from lotka_volterra import prey_gone_at_once
    from lotka_volterra import summarize as summarize_study

    sim = LotkaVolterra(max_events=5000)
    gone = sim.sample(rows(SLOW_END, 3), generator=gen(70)).x
    ref = sim.sample(rows(sim.reference, 6), generator=gen(71)).x
    ref = ref[ref.isfinite().all(dim=1)][:3]
    assert prey_gone_at_once([gone, ref, gone[:1]]) == [True, False, True]
    entry = {"squared_error": [1.0, 3.0, 5.0], "volume": [1.0, 1.0, 1.0], "covered": [True, False, False]}
    s = summarize_study(entry, [True, False, True])
    assert (s["coverage_prey_gone"], s["thetas_prey_gone"], s["mse_prey_gone"]) == (0.5, 2, 3.0)
    assert (s["coverage_prey_left"], s["thetas_prey_left"], s["mse_prey_left"]) == (0.0, 1, 3.0)
