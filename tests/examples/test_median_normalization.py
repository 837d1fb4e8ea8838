"""The median-normalisation demo recovers the size factors that library size misses."""

import numpy as np

from examples import median_normalization as example


def test_soft_median_scalings_beat_library_size(tmp_path):
    initial, learned, truth, counts = example.train(
        steps=120, verbose=False, num_cells=60, num_genes=100
    )
    before, after = example.rms_error(initial, truth), example.rms_error(learned, truth)
    assert after < 0.3 * before
    # The soft answer is the hard median-of-ratios one, up to the softness.
    hard = example.hard_median_of_ratios(counts)
    centred = np.asarray(learned) - np.mean(np.asarray(learned))
    np.testing.assert_allclose(centred, hard, atol=0.1)
    assert np.sqrt(np.mean((centred - hard) ** 2)) < 0.03
    assert example.plot(initial, learned, truth, tmp_path / "m.png").stat().st_size > 0
