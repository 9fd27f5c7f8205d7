"""The demo's settings: its estimators train with the estimators' own defaults unless --epochs says otherwise."""

import goldmine as gm
from goldmine import demo


def test_demo_epochs_default_is_the_estimators_own():
    assert demo.arguments().parse_args([]).epochs is None
    assert demo.arguments().parse_args(["--epochs", "3"]).epochs == 3
    for method in demo.METHODS:
        assert demo.estimator(method).trainer.epochs == gm.RatioEstimator(method).trainer.epochs
        assert demo.estimator(method).training == {**gm.RatioEstimator(method).training, "seed": 0, "progress": False}
        assert demo.estimator(method, 3).trainer.epochs == 3
    assert str(gm.RatioEstimator("carl").trainer.epochs) in demo.arguments().format_help()
