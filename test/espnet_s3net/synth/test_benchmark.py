from espnet_s3net.benchmarks.synth import main


def test_benchmark_result_shape():
    result = main(["--langs", "sv-SE", "--repeats", "1"])
    assert result["audio_s"] > 0 and result["wall_s"] > 0
    assert result["rtf_x"] == result["audio_s"] / result["wall_s"]
    assert set(result["stage_x"]) == {"espeak", "resample", "mp3"}
    assert 0 < result["mp3_share"] < 1
    assert result["target_x"] == 500 and isinstance(result["meets_target"], bool)
    assert result["mp3_speedup_vs_soundfile"] > 0
