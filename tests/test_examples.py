"""The examples run end to end: each script with --quick in its own process, as a user runs it.

The processes start together (each pays the import of torch and a few seconds of training,
so running them side by side keeps the file's wall time near the slowest one's); every test then
waits for its script, checks that it exited cleanly, printed its table and wrote its plot.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # three processes that each train networks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 240  # seconds per script; --quick takes about 20 s on an idle two-core machine

#: script → (the plots it writes, lines its printed table must hold)
EXPECTED = {
    "galton.py": (["galton_llr.png"], ["exact", "carl", "alices", "histogram", "Cramér–Rao bound"]),
    "weinberg_limits.py": (["weinberg_regions.png"], ["exact", "alices", "scandal", "neyman", "wilks"]),
    "lotka_volterra_posterior.py": (["lotka_volterra_corner.png"], ["npe", "nle + MCMC", "log c₃ prey eaten"]),
    "lensing.py": (["lensing_images.png", "lensing_regions.png"], ["carl", "alices", "expected 95% area"]),
    "eft_limits.py": (["eft_limits.png"], ["truth", "alices", "pyhf", "sally", "morphing-weight spread"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts every example with --quick at once; yields script → (process, output folder)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = {}
    for script in EXPECTED:
        out = tmp_path_factory.mktemp(script.removesuffix(".py"))
        process = subprocess.Popen([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        started[script] = (process, out)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("script", list(EXPECTED))
def test_example_runs_quick_and_writes_its_plots(runs, script):
    process, out = runs[script]
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"{script} --quick ran longer than {TIMEOUT} s:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    assert process.returncode == 0, f"{script} --quick failed:\n{stdout[-2000:]}\n{stderr[-4000:]}"
    plots, table = EXPECTED[script]
    for name in plots:
        png = out / name
        assert png.is_file(), f"{script} did not write {png}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG file"
        assert str(png) in stdout, f"{script} did not print the path of {png}"
    for word in table:
        assert word in stdout, f"{script} printed no {word!r}:\n{stdout[-2000:]}"
    assert "finished in" in stdout
