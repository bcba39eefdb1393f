"""Each benchmark runs and reports its figure (tiny settings; the figures are not checked)."""

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name, args, keys", [
    ("audio_format", ["--clips", "2", "--seconds", "1", "--repeats", "1"], {"rtf_x", "target_x"}),
    ("mask_storage", ["--config", "xlsr_tiny", "--langs", "2", "--repeats", "1"],
     {"bits_per_weight_per_language", "load_apply_ms"}),
    ("te_cost", ["--config", "xlsr_tiny", "--batches", "1", "--batch", "1", "--seconds", "1", "--repeats", "1"],
     {"ratio", "target"}),
    ("decode_rtf", ["--xlsr_config", "xlsr_tiny", "--utts", "2"], {"rtf", "audio_s", "params"}),
    ("masked_step", ["--batch", "1", "--seconds", "1", "--repeats", "1", "--langs", "2", "--memory_runs", "1"],
     {"time_ratio", "overhead_weight_copies", "peak_mem_ratio", "frozen_vs_shared", "peak_mem_ratio_frozen",
      "targets", "meets_targets"}),
])
def test_benchmark_prints_one_json_line(name, args, keys):
    out = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", name, *args],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    result = json.loads(out[-1])
    assert result["benchmark"] == name and keys <= set(result)


def test_unknown_benchmark_lists_the_available_ones():
    result = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", "nope"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "available: " in result.stderr and "masked_step" in result.stderr
