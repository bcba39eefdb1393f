"""Each benchmark runs and reports its figure (tiny settings; the figures are not checked)."""

import argparse
import json
import math
import subprocess
import sys

import pytest
import torch


@pytest.mark.parametrize("name, args, keys", [
    ("audio_format", ["--clips", "2", "--seconds", "1", "--repeats", "1"], {"rtf_x", "target_x"}),
    ("mask_storage", ["--config", "xlsr_tiny", "--langs", "2", "--repeats", "1"],
     {"bits_per_weight_per_language", "load_apply_ms"}),
    ("te_cost", ["--config", "xlsr_tiny", "--batches", "1", "--batch", "1", "--seconds", "1", "--repeats", "1"],
     {"ratio", "target"}),
    ("mask_ops", ["--shape", "64", "32", "--repeats", "3"],
     {"op_weight_copies", "step_weight_copies", "extra_bytes_per_weight", "copy_ms"}),
    ("decode_rtf", ["--xlsr_config", "xlsr_tiny", "--utts", "2"], {"rtf", "audio_s", "params"}),
    ("masked_step", ["--batch", "1", "--seconds", "1", "--repeats", "1", "--langs", "2", "--memory_runs", "1"],
     {"time_ratio", "overhead_weight_copies", "overhead_weight_copies_at_batch", "peak_mem_ratio",
      "frozen_vs_shared", "peak_mem_ratio_frozen", "targets", "meets_targets", "time_ratio_rounds", "peak_kb_runs",
      "peak_tensor_ratio", "peak_tensor_kb"}),
    ("l2s_step", ["--xlsr_config", "xlsr_tiny", "--batch", "1", "--seconds", "1", "--repeats", "1",
                  "--teacher_steps", "1"],
     {"ratio", "target", "meets_target", "step_ms", "teacher_ms", "cache_read_ms", "teacher_share"}),
    ("distil_step", ["--config", "xlsr_tiny", "--batch", "1", "--seconds", "1", "--repeats", "1"],
     {"time_ratio", "time_ratio_conv_trained", "target", "meets_target", "student_params", "layer_map"}),
])
def test_benchmark_prints_one_json_line(name, args, keys):
    out = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", name, *args],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    result = json.loads(out[-1])
    assert result["benchmark"] == name and keys <= set(result)


def test_pathway_update_reports_a_finite_ratio():
    out = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", "pathway_update", "--config", "xlsr_tiny",
                          "--batch", "1", "--seconds", "1", "--steps", "1", "--langs", "2", "--updates_per_round", "8",
                          "--score_window", "4"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    result = json.loads(out[-1])
    assert {"ratio", "target", "meets_target", "step_ms", "accumulation_overhead_ms", "count_update_ms",
            "mask_update_ms", "mask_update_per_update_ms"} <= set(result)
    assert set(result["step_ms"]) == {"plain", "schedule"}
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0 and result["mask_update_ms"] > 0
    assert result["count_update_ms"] > 0 and result["score_window"] == 4 and "scored_step_ratio" in result


def test_unknown_benchmark_lists_the_available_ones():
    result = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", "nope"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "available: " in result.stderr and "masked_step" in result.stderr


def test_nm_speedup_on_cpu_says_it_measured_nothing():
    out = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.benchmark", "nm_speedup", "--device", "cpu"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    result = json.loads(out[-1])
    assert result["measured"] is False and result["reason"].startswith("no CUDA device")


def test_nm_speedup_measurement_runs_with_stand_in_kernels(monkeypatch):
    """The GPU measurement on CPU, its CUDA checks and sparse conversion stood in (W ⊙ m itself)."""
    from espnet_s3net.asr import sparse_kernels
    from espnet_s3net.benchmarks import nm_speedup

    monkeypatch.setattr(sparse_kernels, "_device_reasons", lambda *args, **kwargs: [])
    monkeypatch.setattr(sparse_kernels, "to_sparse_semi_structured", lambda weight: weight)
    args = argparse.Namespace(device="cpu", batch=1, seconds=0.5, warmup=1, repeats=2)
    result = nm_speedup._measure("xlsr_tiny", args, torch.bfloat16)
    assert set(result) == {"encoder", "transformer"}
    assert set(result["encoder"]) == {"masked_ms", "dense_ms", "sparse_ms", "ratio", "ratio_vs_dense"}


@pytest.mark.parametrize("threshold", [None, 1 << 20])
def test_masked_step_memory_arms_run_with_the_allocator_setting_asked_for(threshold, monkeypatch):
    from espnet_s3net.benchmarks import masked_step

    envs = []

    def fake_run(cmd, env, **kwargs):
        envs.append(env)
        return subprocess.CompletedProcess(cmd, 0, stdout='{"peak_kb": 7}\n')

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(masked_step.subprocess, "run", fake_run)
    args = argparse.Namespace(config="xlsr_tiny", batch=1, seconds=1.0, device="cpu", malloc_mmap_threshold=threshold)
    assert masked_step._run_memory_arm("dense", "masks.pt", args) == 7
    assert envs[0]["OMP_NUM_THREADS"] == "1"
    assert envs[0].get("MALLOC_MMAP_THRESHOLD_") == (None if threshold is None else str(threshold))
