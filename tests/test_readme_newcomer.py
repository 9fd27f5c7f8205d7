"""The README's section "Your own simulator, step by step" runs as written: its simulator file, its Python
snippet and its command-line block, for its two-parameter simulator and for a one-parameter one."""

import re
import runpy
import shlex
from pathlib import Path

import pytest

from goldmine.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

ONE_PARAMETER = '''
import math

import torch

from goldmine.simulators import Draws, Simulator, box_prior


class MySimulator(Simulator):
    """One parameter, the drift of a latent walk: z_k ~ N(θ/4, 1) for k = 1..4, x ~ N(Σ z_k, 1)."""

    name = "walk"
    theta_dim, x_dim = 1, 1
    theta_names = ("drift",)

    def __init__(self):
        self.prior = box_prior([-1.0], [1.0])
        self.reference = torch.tensor([0.0], dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        z = theta / 4 + torch.randn(len(theta), 4, dtype=torch.float64, generator=generator)
        x = z.sum(1, keepdim=True) + torch.randn(len(theta), 1, dtype=torch.float64, generator=generator)
        return Draws(x, z)

    def joint_log_prob(self, draws, theta):
        theta = self.check_theta(theta)
        walk = -0.5 * ((draws.z - theta / 4) ** 2).sum(1)
        return walk - 0.5 * (draws.x[:, 0] - draws.z.sum(1)) ** 2 - 2.5 * math.log(2 * math.pi)

    def log_prob(self, x, theta):
        x, theta = self.check_x(x), self.check_theta(theta)
        return -0.5 * (x[:, 0] - theta[:, 0]) ** 2 / 5 - 0.5 * math.log(2 * math.pi * 5)
'''


def block(name: str) -> str:
    """The code block after the README's marker `<!-- newcomer: NAME -->`."""
    text = README.read_text()
    found = re.search(rf"<!-- newcomer: {re.escape(name)} -->\n```\w*\n(.*?)```", text, re.S)
    assert found, f"README.md has no block marked newcomer: {name}"
    return found.group(1)


def commands(text: str, true_theta: str | None):
    """The goldmine commands of a shell block as argument lists (PYTHONPATH=. is the folder on sys.path)."""
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # an environment assignment: the test puts the folder on the path itself
        if not words:
            continue
        assert words[0] == "goldmine", line
        if true_theta is not None and "--true-theta" in words:
            words[words.index("--true-theta") + 1] = true_theta
        yield words[1:]


@pytest.mark.slow
@pytest.mark.parametrize("dimensions", [2, 1])
def test_the_newcomer_section_runs_as_written(dimensions, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as PYTHONPATH=. would
    monkeypatch.delitem(__import__("sys").modules, "mysim", raising=False)
    (tmp_path / "mysim.py").write_text(block("mysim.py") if dimensions == 2 else ONE_PARAMETER)

    runpy.run_path(_write(tmp_path, block("python")), run_name="__main__")
    out = capsys.readouterr().out
    assert "identities hold" in out and "monte carlo" in out
    if dimensions == 2:
        assert "68% wilks region area" in out and "(in units of mu × log_s)" in out
    else:
        assert "68% wilks region [" in out  # an interval
    assert ("mu = " in out and "log_s = " in out) if dimensions == 2 else "drift = " in out
    assert (tmp_path / "region.png").stat().st_size > 0

    for argv in commands(block("shell"), None if dimensions == 2 else "0.3"):
        assert main(argv) == 0, argv
    out = capsys.readouterr().out
    assert "the true θ is inside the region" in out or "the true θ is outside the region" in out
    assert "Monte Carlo" in out and "evaluations of log p(x|θ), about" in out
    assert ("mu = " in out) if dimensions == 2 else ("drift = " in out)


def _write(folder: Path, text: str) -> str:
    path = folder / "snippet.py"
    path.write_text(text)
    return str(path)
