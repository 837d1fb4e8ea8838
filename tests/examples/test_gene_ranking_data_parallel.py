"""`--devices N`: the gene-ranking example trains data-parallel over a device mesh."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from examples import gene_ranking as example

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 8

_CHILD = f"""
import json, jax
jax.config.update("jax_num_cpu_devices", {DEVICES})
from examples import gene_ranking
print(json.dumps(gene_ranking.train_data_parallel({DEVICES}, steps=40, verbose=False)))
"""


def test_trains_data_parallel_on_8_simulated_devices():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == DEVICES
    assert report["panels"] == 2 * DEVICES and report["rows_per_device"] == [2]
    assert report["weights_replicated"]
    # Data parallel: the gradient is summed across devices; the batch is never gathered.
    assert report["collectives"]["all-reduce"] >= 1
    assert report["collectives"]["all-gather"] == 0
    assert report["collectives"]["all-to-all"] == 0
    assert report["after"] > 0.95
    assert report["after"] > report["before"] + 0.3


def test_the_same_code_runs_on_one_device():
    report = example.train_data_parallel(1, steps=20, genes_per_panel=16, verbose=False)
    assert report["devices"] == 1 and report["rows_per_device"] == [2]
    assert report["after"] > report["before"] + 0.3


def test_more_devices_than_visible_is_a_clear_error():
    with pytest.raises(ValueError, match=r"--devices 4096: only \d+ device\(s\) visible"):
        example.train_data_parallel(4096, steps=1)
    assert jax.device_count() < 4096
