"""The quality-filtering demo learns the hidden rule and plots it."""

from examples import quality_filtering as example

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_learned_thresholds_are_within_half_a_unit_of_the_truth(tmp_path):
    initial, learned, data = example.train(steps=250, verbose=False)
    assert abs(float(learned["quality_threshold"]) - example.TRUE_QUALITY_THRESHOLD) < 0.5
    assert abs(float(learned["mapping_threshold"]) - example.TRUE_MAPPING_THRESHOLD) < 0.5
    before = example.hard_accuracy(initial, *data)
    after = example.hard_accuracy(learned, *data)
    assert after > before + 0.1
    assert after > 0.95  # 3% of labels are flipped, so ~0.97 is the ceiling
    path = example.plot(initial, learned, data, tmp_path / "plots" / "q.png")
    assert path == tmp_path / "plots" / "q.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_loss_falls():
    initial, learned, data = example.train(steps=60, verbose=False)
    assert example.loss_fn(learned, *data) < 0.5 * example.loss_fn(initial, *data)


def test_main_prints_the_metric_and_saves_the_plot(tmp_path, capsys):
    path = tmp_path / "quality_filtering.png"
    result = example.main(steps=60, path=path)
    assert path.stat().st_size > 0
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    out = capsys.readouterr().out
    assert f"hard-filter accuracy {result.before:.3f} -> {result.after:.3f}" in out
    assert f"plot: {path}" in out
    assert result.after > result.before
