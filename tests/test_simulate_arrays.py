"""goldmine.simulate writes the arrays of its definition, bit for bit: every block drawn from its own seed, the
rows at θ_i and at θ_ref interleaved, the blocks in order. The reference below builds them the plain way
(stack the two halves, concatenate the blocks), as `simulate` did before it wrote blocks into one set of
arrays; the count of invalid rows is checked row by row."""

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine import data as data_module
from goldmine.executor import one_thread, seeded_generator
from goldmine.mining import augment
from goldmine.simulators import (Draws, GaltonBoard, GaussianMixture, LotkaVolterra, Poisson, SLCP,
                                 Simulator, TwoMoons, Weinberg, box_prior)
from goldmine.simulators.base import draw_prior, seed_from


def plain_block(sim, rows, generator, reference, layout):
    """One block, the plain way: (rows at θ, rows at θ_ref) stacked row by row, or the rows at θ ~ prior."""
    if layout == "prior":
        theta = draw_prior(sim.prior, rows, seed=seed_from(generator))
        draws = sim.sample(theta, generator=generator)
        out = {"theta": theta, "label": torch.zeros(rows, dtype=torch.int8), "x": draws.x}
        if sim.has_gold:
            out.update(augment(sim, draws, theta, reference))
        return {k: v.detach().numpy() for k, v in out.items()}
    pairs = rows // 2
    theta = draw_prior(sim.prior, pairs, seed=seed_from(generator))
    at_theta = sim.sample(theta, generator=generator)
    at_ref = sim.sample(reference.expand(pairs, -1), generator=generator)
    parts = [{"x": at_theta.x}, {"x": at_ref.x}]
    if sim.has_gold:
        parts[0].update(augment(sim, at_theta, theta, reference))
        parts[1].update(augment(sim, at_ref, theta, reference))
    out = {"theta": theta.repeat_interleave(2, dim=0), "label": torch.tensor([0, 1], dtype=torch.int8).repeat(pairs)}
    for key in parts[0]:
        out[key] = torch.stack([parts[0][key], parts[1][key]], dim=1).reshape(rows, *parts[0][key].shape[1:])
    return {k: v.detach().numpy() for k, v in out.items()}


def plain_arrays(sim, n, seed, layout):
    block = sim.block_size
    with one_thread():
        parts = [plain_block(sim, min(block, n - b * block), seeded_generator(seed, b), sim.reference.double(), layout)
                 for b in range(-(-n // block))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def written(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f}, int(f.attrs["invalid_rows"])


def assert_identical(expected, got):
    assert sorted(expected) == sorted(got)
    for k in expected:
        assert got[k].dtype == expected[k].dtype, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)  # NaN equals NaN here, bit for bit otherwise


def rows_with_non_finite(arrays):
    """Rows with a NaN or infinite x or score, or a NaN log r (log r = ±∞ is a valid label)."""
    n = len(arrays["theta"])
    bad = np.zeros(n, dtype=bool)
    for k in ("x", "log_r", "score", "score_ref"):
        if k in arrays:
            a = arrays[k].reshape(n, -1)
            bad |= (np.isnan(a) if k == "log_r" else ~np.isfinite(a)).any(axis=1)
    return int(bad.sum())


class Images(Simulator):
    """x of more than one axis, (n, 2, 3), and no gold."""

    name, theta_dim, x_shape, has_gold = "images", 2, (2, 3), False
    prior, reference = box_prior([0.0, 0.0], [1.0, 1.0]), torch.tensor([0.5, 0.5], dtype=torch.float64)

    def sample(self, theta, generator=None):
        noise = torch.randn(len(theta), 2, 3, generator=generator, dtype=torch.float64)
        return Draws(theta[:, :, None] * torch.arange(6.0, dtype=torch.float64).reshape(1, 2, 3) + noise)


def fast_ones():
    return [("galton", GaltonBoard(), 100), ("weinberg", Weinberg(), 100), ("poisson", Poisson(), 100),
            ("mixture", GaussianMixture(dim=2), 100), ("images", Images(), 100)]


def slow_ones():
    lv = LotkaVolterra()  # its runs are slow (a compiled engine), and some overflow its event cap: invalid rows
    return [("slcp", SLCP(), 250), ("two_moons", TwoMoons(), 250), ("lotka_volterra", lv, 60)]


def check_simulators(tmp_path, simulators, layout):
    for name, sim, block in simulators:
        sim.block_size = block
        n = 3 * block + 2 * (block // 4)  # a partial last block
        expected = plain_arrays(sim, n, 11, layout)
        for chunk_size in (None, 2 * block):  # one block a chunk, and two
            got, invalid = written(gm.simulate(sim, n, tmp_path / f"{name}-{layout}-{chunk_size}.h5", seed=11,
                                               chunk_size=chunk_size, layout=layout, progress=False).path)
            assert_identical(expected, got)
            assert invalid == rows_with_non_finite(expected), name
        if name == "lotka_volterra":
            assert invalid > 0  # the count of invalid rows is exercised


@pytest.mark.parametrize("layout", ["pairs", "prior"])
def test_simulate_writes_the_plain_arrays_bit_for_bit(tmp_path, layout):
    check_simulators(tmp_path, fast_ones(), layout)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["pairs", "prior"])
def test_simulate_writes_the_plain_arrays_of_the_other_built_ins(tmp_path, layout):
    check_simulators(tmp_path, slow_ones(), layout)


def test_invalid_rows_counts_non_finite_rows_exactly():
    rng = np.random.default_rng(0)
    arrays = {"theta": rng.normal(size=(50, 2)), "x": rng.normal(size=(50, 3)), "label": np.zeros(50, np.int8),
              "log_r": rng.normal(size=50), "score": rng.normal(size=(50, 2))}
    assert data_module.invalid_rows(arrays, 50) == 0
    arrays["x"][[3, 7], 1] = [np.nan, np.inf]
    arrays["log_r"][7] = -np.inf
    arrays["score"][20, 0] = np.nan
    assert data_module.invalid_rows(arrays, 50) == 3
    big = {"theta": arrays["theta"], "x": np.full((50, 3), 1e308)}  # finite values whose sum overflows
    big["x"][9, 2] = np.nan
    assert data_module.invalid_rows(big, 50) == 1
    assert data_module.invalid_rows({"x": np.ones((4, 2), np.int64)}, 4) == 0


def test_a_failed_write_is_raised_and_keeps_the_chunks_written(tmp_path, monkeypatch):
    sim = GaltonBoard()
    sim.block_size = 100
    append = data_module._append
    calls = []

    def failing(f, chunk):
        calls.append(len(chunk["theta"]))
        if len(calls) == 3:
            raise OSError("disk full")
        append(f, chunk)

    monkeypatch.setattr(data_module, "_append", failing)
    with pytest.raises(OSError, match="disk full"):
        gm.simulate(sim, 1000, tmp_path / "d.h5", seed=2, chunk_size=200, progress=False)
    assert len(calls) == 3  # the chunks drawn after the failure are not written
    partial = gm.Dataset(tmp_path / "d.h5")
    assert len(partial) == 400 and not partial.complete
    monkeypatch.setattr(data_module, "_append", append)
    resumed = gm.simulate(sim, 1000, tmp_path / "d.h5", seed=2, chunk_size=200, progress=False)
    assert resumed.complete
    assert_identical(plain_arrays(sim, 1000, 2, "pairs"), written(resumed.path)[0])
