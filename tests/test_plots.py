"""Every figure function writes a non-empty PNG from plain arrays."""

import numpy as np
import pytest
import torch

from goldmine import plots

PNG = b"\x89PNG\r\n\x1a\n"


def written(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def test_llr_curves(tmp_path):
    theta = torch.linspace(-1, 1, 51)
    curves = {"exact": 40 * theta**2, "alices": 38 * (theta - 0.02) ** 2, "carl": np.asarray(30 * theta**2)}
    curves["carl"][0] = np.inf  # an impossible θ must not break the axis range
    out = plots.llr_curves(theta, curves, truth=0.0, threshold=[1.0, 3.84], path=tmp_path / "llr.png")
    assert out == tmp_path / "llr.png" and written(out)


def test_contours_2d(tmp_path):
    a, b = torch.meshgrid(torch.linspace(40, 50, 21), torch.linspace(0.5, 1.2, 21), indexing="ij")
    grid = torch.stack([a, b], -1).reshape(-1, 2)
    q = {"exact": ((grid - torch.tensor([45.0, 0.9])) ** 2 / torch.tensor([4.0, 0.04])).sum(1),
         "sally": ((grid - torch.tensor([45.5, 0.85])) ** 2 / torch.tensor([5.0, 0.05])).sum(1)}
    assert written(plots.contours_2d(grid, q, truth=[45.0, 0.9], labels=("E", "G_f"), path=tmp_path / "c.png"))
    with pytest.raises(ValueError, match="even"):
        plots.contours_2d(grid[:-1], {"x": q["exact"][:-1]}, path=tmp_path / "bad.png")


def test_corner(tmp_path):
    g = torch.Generator().manual_seed(0)
    samples = {"abc": torch.randn(500, 3, generator=g), "exact": torch.randn(800, 3, generator=g) + 0.2}
    assert written(plots.corner(samples, truth=[0, 0, 0], labels=["a", "b", "c"], path=tmp_path / "corner.png"))
    assert written(plots.corner({"one": np.random.default_rng(0).normal(size=(300, 1))}, path=tmp_path / "c1.png"))


def test_coverage_plot(tmp_path):
    levels = np.array([0.5, 0.68, 0.9, 0.95])
    assert written(plots.coverage_plot(levels, levels - 0.01, np.full(4, 0.02), path=tmp_path / "cov.png"))


def test_fisher_ellipses(tmp_path):
    fishers = {"exact": torch.tensor([[4.0, 1.0], [1.0, 2.0]]), "sally": torch.tensor([[3.5, 0.8], [0.8, 2.1]])}
    assert written(plots.fisher_ellipses(fishers, center=[42.0, 0.9], n_obs=10, path=tmp_path / "f2.png"))
    assert written(plots.fisher_ellipses({"exact": torch.tensor([[7.4]]), "sally": [[7.0]]}, center=[2.0],
                                         n_obs=5, labels=("log λ",), path=tmp_path / "f1.png"))


def test_sample_efficiency(tmp_path):
    budgets = np.array([1e3, 1e4, 1e5])
    errors = {"alices": (1 / np.sqrt(budgets), 0.8 / np.sqrt(budgets), 1.2 / np.sqrt(budgets)),
              "carl": (3 / np.sqrt(budgets), 2 / np.sqrt(budgets), 4 / np.sqrt(budgets))}
    assert written(plots.sample_efficiency(budgets, errors, path=tmp_path / "nested" / "eff.png"))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["wilks", "neyman"])
def test_a_region_and_its_inference_result_draw_one_picture(tmp_path, method):
    """plots.region (a Region) and workflow.plot_inference (infer's JSON dict) draw through plots.q_figure: the
    same region gives the same picture (Neyman's one-dimensional curves zoomed in the report, as before)."""
    import matplotlib.image

    import goldmine as gm
    from goldmine import workflow
    from goldmine.inference import Model, confidence_region

    sim = gm.simulators.Weinberg()
    x = sim.sample(torch.tensor([[45.0, 0.8]]).expand(50, 2), generator=torch.Generator().manual_seed(0)).x
    model = Model(sim, prior=sim, simulator=sim)
    settings = {"toys": 10} if method == "neyman" else {}
    region = confidence_region(model, x, 0.9, method, grid=model.grid(7), progress=False, **settings)
    result = workflow.infer(sim, sim, x, level=0.9, method=method, grid_points=7, progress=False, **settings)
    drawn = plots.region(region, truth=[45.0, 0.8], name="exact", path=tmp_path / "region.png")
    reported = workflow.plot_inference({"exact": result}, tmp_path / "report.png", [45.0, 0.8])
    np.testing.assert_array_equal(matplotlib.image.imread(drawn), matplotlib.image.imread(reported))
