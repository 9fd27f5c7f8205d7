"""simulate() and Dataset: layout, reproducibility, resumption, Dask, streaming, bad input."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, box_prior


def small_galton(block=1000):
    sim = GaltonBoard()
    sim.block_size = block
    return sim


def arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f.keys()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_row_layout(tmp_path):
    sim = small_galton()
    data = gm.simulate(sim, 4000, tmp_path / "d.h5", seed=3, progress=False)
    assert len(data) == 4000 and data.complete and data.has_gold
    t = data.tensors(dtype=torch.float64)
    assert t["label"].tolist()[:4] == [0, 1, 0, 1]
    # the two rows of a pair share θ; the reference row's log_r is the replay at θ vs θ_ref
    torch.testing.assert_close(t["theta"][0::2], t["theta"][1::2])
    assert (t["label"] == 1).sum() == 2000
    # rows at θ_ref: x follows p(x|θ_ref); the mean of r over them is 1 (gold identity, 5 s.e.)
    r = t["log_r"][t["label"] == 1].exp()
    assert abs(r.mean() - 1) < 5 * r.std() / len(r) ** 0.5
    # the score at the reference row is the joint score at θ_ref, and its mean is 0
    s = t["score_ref"][t["label"] == 1][:, 0]
    assert abs(s.mean()) < 5 * s.std() / len(s) ** 0.5
    assert "galton" in repr(data) and "4000 rows" in repr(data)


@pytest.mark.slow
def test_same_seed_same_arrays_for_any_chunking_and_workers(tmp_path):
    sim = small_galton()
    base = arrays(gm.simulate(sim, 10_000, tmp_path / "a.h5", seed=7, progress=False).path)
    other = arrays(gm.simulate(sim, 10_000, tmp_path / "b.h5", seed=7, chunk_size=3000, progress=False).path)
    assert_same(base, other)
    parallel = arrays(gm.simulate(sim, 10_000, tmp_path / "c.h5", seed=7, workers=2, chunk_size=1000, progress=False).path)
    assert_same(base, parallel)
    different = arrays(gm.simulate(sim, 10_000, tmp_path / "d.h5", seed=8, progress=False).path)
    assert not np.array_equal(base["x"], different["x"])


@pytest.mark.slow
def test_dask_cluster_gives_the_same_arrays(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    sim = small_galton()
    base = arrays(gm.simulate(sim, 6000, tmp_path / "a.h5", seed=1, progress=False).path)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        by_address = gm.simulate(sim, 6000, tmp_path / "b.h5", seed=1, cluster=cluster.scheduler_address, progress=False)
        with distributed.Client(cluster) as client:
            by_client = gm.simulate(sim, 6000, tmp_path / "c.h5", seed=1, cluster=client, progress=False)
    assert_same(base, arrays(by_address.path))
    assert_same(base, arrays(by_client.path))


SLOW = textwrap.dedent(
    """
    import sys, time, pathlib
    import goldmine as gm
    from goldmine.simulators import GaltonBoard

    class SlowGalton(GaltonBoard):
        block_size = 500

        def sample(self, theta, generator=None):
            marker = pathlib.Path(sys.argv[2])
            marker.write_text(str(int(marker.read_text() or 0) + 1) if marker.exists() else "1")
            if len(sys.argv) > 3:
                time.sleep(0.3)
            return super().sample(theta, generator)

    if __name__ == "__main__":
        gm.simulate(SlowGalton(), 6000, sys.argv[1], seed=5, chunk_size=500, progress=False)
    """
)


@pytest.mark.slow
def test_killed_run_keeps_completed_chunks_and_resumes(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    marker = tmp_path / "calls"
    path = tmp_path / "killed.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(marker), "slow"], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (marker.exists() and int(marker.read_text() or 0) >= 8):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = gm.Dataset(path)
    assert not partial.complete and 0 < len(partial) < 6000 and len(partial) % 500 == 0
    # resume: the same call finishes the file, equal to an uninterrupted run
    subprocess.run([sys.executable, str(script), str(path), str(marker)], env=env, check=True)
    subprocess.run([sys.executable, str(script), str(tmp_path / "whole.h5"), str(marker)], env=env, check=True)
    assert gm.Dataset(path).complete
    assert_same(arrays(path), arrays(tmp_path / "whole.h5"))


def test_streaming_batches_cover_every_row_once(tmp_path):
    data = gm.simulate(small_galton(), 5000, tmp_path / "d.h5", seed=2, progress=False)
    seen = []
    for batch in data.batches(64, fields=["x", "theta", "label"], chunk_rows=700, seed=1):
        assert len(batch["x"]) <= 64
        seen.append(batch["theta"][:, 0])
    seen = torch.cat(seen).sort().values
    torch.testing.assert_close(seen, data.tensors(["theta"])["theta"][:, 0].sort().values)
    labels = torch.cat([b["label"] for b in data.batches(100, label=1, chunk_rows=700)])
    assert len(labels) == 2500 and (labels == 1).all()


def test_split_is_disjoint_and_balanced(tmp_path):
    data = gm.simulate(small_galton(), 5000, tmp_path / "d.h5", progress=False)
    train, val = data.split(0.2)
    assert len(train) == 4000 and len(val) == 1000
    assert (val.tensors(["label"])["label"] == 1).sum() == 500
    with pytest.raises(ValueError, match="fraction"):
        data.split(1.5)


def test_black_box_data_set_has_no_gold(tmp_path):
    sim = BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape), box_prior([-1], [1]), name="noisy")
    data = gm.simulate(sim, 200, tmp_path / "bb.h5", progress=False)
    assert data.fields == ("theta", "x", "label") and not data.has_gold
    with pytest.raises(ValueError, match=r"log_r.*black-box.*carl, nre, nle"):
        data.tensors(["x", "log_r"])


def test_bad_input_writes_nothing(tmp_path):
    sim = small_galton()
    path = tmp_path / "d.h5"
    for bad, message in [(dict(n=1001), "even"), (dict(n=0), "even"), (dict(n=100, workers=0), "workers"),
                         (dict(n=100, reference=[5.0]), "outside the support")]:
        with pytest.raises(ValueError, match=message):
            gm.simulate(sim, path=path, progress=False, **bad)
        assert not path.exists()


def test_existing_file_of_another_call_is_refused_untouched(tmp_path):
    path = tmp_path / "d.h5"
    gm.simulate(small_galton(), 2000, path, seed=0, progress=False)
    before = arrays(path)
    with pytest.raises(ValueError, match=r"seed: file has 0, call has 1"):
        gm.simulate(small_galton(), 2000, path, seed=1, progress=False)
    with pytest.raises(ValueError, match="simulator"):
        sim = BlackBoxSimulator(lambda t: t, box_prior([-1], [1]))
        gm.simulate(sim, 2000, path, seed=0, progress=False)
    assert_same(before, arrays(path))
    again = gm.simulate(small_galton(), 2000, path, seed=0, progress=False)  # the same call reuses it
    assert len(again) == 2000
    odd = tmp_path / "odd.h5"  # a last block shorter than block_size is not drawn again either
    first = arrays(gm.simulate(small_galton(), 2500, odd, progress=False).path)
    assert_same(first, arrays(gm.simulate(small_galton(), 2500, odd, progress=False).path))


def test_corrupt_and_truncated_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        gm.Dataset(garbage)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        gm.simulate(small_galton(), 100, garbage, progress=False)
    path = tmp_path / "whole.h5"
    gm.simulate(small_galton(), 4000, path, progress=False)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt or truncated|truncated"):
        gm.Dataset(cut)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a goldmine data set"):
        gm.Dataset(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="simulate"):
        gm.Dataset(tmp_path / "missing.h5")
