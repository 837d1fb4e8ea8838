"""The quality-filtering demo learns the hidden rule."""

from examples import quality_filtering as example


def test_learned_thresholds_are_within_half_a_unit_of_the_truth():
    initial, learned, data = example.train(steps=250, verbose=False)
    assert abs(float(learned["quality_threshold"]) - example.TRUE_QUALITY_THRESHOLD) < 0.5
    assert abs(float(learned["mapping_threshold"]) - example.TRUE_MAPPING_THRESHOLD) < 0.5
    before = example.hard_accuracy(initial, *data)
    after = example.hard_accuracy(learned, *data)
    assert after > before + 0.1
    assert after > 0.95  # 3% of labels are flipped, so ~0.97 is the ceiling


def test_loss_falls():
    initial, learned, data = example.train(steps=60, verbose=False)
    assert example.loss_fn(learned, *data) < 0.5 * example.loss_fn(initial, *data)
