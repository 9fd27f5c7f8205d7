"""The symmetric CNN embedding (`{"name": "cnn", "symmetric": True}`): exact invariance under the symmetries of
the square, through a trained estimator and its save/load record."""

import json

import pytest
import torch

import goldmine as gm
from goldmine.embeddings import build_embedding, dihedral, embedding_spec
from goldmine.simulators.lensing import StrongLensing

SMALL = {"name": "cnn", "channels": [4, 8], "out": 8}


def transforms(x):
    """The 8 symmetries of the square written out independently of `dihedral`: flips and transposes."""
    t = x.transpose(-2, -1)
    return [x, x.flip(-1), x.flip(-2), x.flip(-2, -1), t, t.flip(-1), t.flip(-2), t.flip(-2, -1)]


def test_dihedral_gives_the_eight_distinct_symmetries_of_the_square():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    views = {tuple(v.flatten().tolist()) for v in dihedral(x)}
    assert views == {tuple(v.flatten().tolist()) for v in transforms(x)} and len(views) == 8


@pytest.mark.parametrize("shape", [(1, 12, 12), (2, 12, 12), (12, 12)])
def test_the_symmetric_cnn_is_invariant_under_the_eight_transforms(shape):
    torch.manual_seed(0)
    net, _, out = build_embedding(embedding_spec({**SMALL, "symmetric": True}), shape)
    plain, _, _ = build_embedding(embedding_spec(SMALL), shape)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        ref = net(x)
        assert ref.shape == (5, out)
        for view in transforms(x)[1:]:
            torch.testing.assert_close(net(view), ref, rtol=1e-5, atol=1e-5)
        # the plain network is not invariant: the check above is not vacuous
        assert not torch.allclose(plain(x.flip(-1)), plain(x), rtol=1e-3, atol=1e-3)


def test_an_empty_batch_gives_no_features():
    net, _, out = build_embedding(embedding_spec({**SMALL, "symmetric": True}), (1, 12, 12))
    assert net(torch.zeros(0, 1, 12, 12)).shape == (0, out)


def test_a_non_square_image_gets_the_four_flips():
    torch.manual_seed(1)
    net, _, _ = build_embedding(embedding_spec({**SMALL, "symmetric": True}), (1, 8, 12))
    x = torch.randn(3, 1, 8, 12)
    with torch.no_grad():
        for view in (x.flip(-1), x.flip(-2), x.flip(-2, -1)):
            torch.testing.assert_close(net(view), net(x), rtol=1e-5, atol=1e-5)


def test_symmetric_must_be_a_bool():
    with pytest.raises(ValueError, match="symmetric must be True or False"):
        embedding_spec({"name": "cnn", "symmetric": 1})
    assert embedding_spec("cnn")["symmetric"] is False


def test_a_symmetric_cnn_estimator_is_invariant_and_its_record_round_trips(tmp_path):
    sim = StrongLensing(size=12)
    data = gm.simulate(sim, 128, tmp_path / "lens.h5", seed=0, progress=False)
    est = gm.RatioEstimator("carl", embedding={**SMALL, "symmetric": True}, hidden=(16,), epochs=1,
                            progress=False).fit(data)
    x = data.tensors(["x"])["x"][:6]
    theta = torch.tensor([[0.1, -1.9]])
    before = est.log_ratio(x, theta)
    for view in transforms(x)[1:]:
        torch.testing.assert_close(est.log_ratio(view, theta), before, rtol=1e-4, atol=1e-4)
    est.save(tmp_path / "m")
    record = json.loads((tmp_path / "m" / "config.json").read_text())["params"]["embedding"]
    assert record["symmetric"] is True
    again = gm.load(tmp_path / "m")
    assert again.params["embedding"]["symmetric"] is True
    assert torch.equal(again.log_ratio(x, theta), before)
