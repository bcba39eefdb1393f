"""The recipe's own shell utilities: option parsing and the local job runner."""

import subprocess
from pathlib import Path

UTILS = Path(__file__).resolve().parents[2] / "egs2" / "commonvoice_s3net" / "ssl1" / "utils"


def _bash(script, cwd):
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True)


def test_parse_options_accepts_both_spellings(tmp_path):
    script = (f'foo_bar=1; other=x; set -- --foo-bar 5 --other=y rest; . {UTILS}/parse_options.sh; '
              'echo "$foo_bar $other $*"')
    assert _bash(script, tmp_path).stdout.strip() == "5 y rest"
    script = f'foo_bar=1; set -- --foo_bar "two words"; . {UTILS}/parse_options.sh; echo "$foo_bar"'
    assert _bash(script, tmp_path).stdout.strip() == "two words"


def test_parse_options_rejects_unknown_and_prints_help(tmp_path):
    result = _bash(f"foo=1; set -- --nope 3; . {UTILS}/parse_options.sh; echo reached", tmp_path)
    assert result.returncode == 1 and "unknown option --nope" in result.stderr and "reached" not in result.stdout
    result = _bash(f"foo_bar=7; set -- --help; . {UTILS}/parse_options.sh", tmp_path)
    assert result.returncode == 0 and "--foo_bar 7" in result.stdout


def test_run_local_job_array(tmp_path):
    result = subprocess.run([str(UTILS / "run_local.sh"), "JOB=1:3", "log/j.JOB.log", "bash", "-c", "echo hi JOB"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0
    for n in (1, 2, 3):
        log = (tmp_path / "log" / f"j.{n}.log").read_text()
        assert f"hi {n}" in log and "exit code 0" in log


def test_run_local_names_the_failed_job(tmp_path):
    result = subprocess.run([str(UTILS / "run_local.sh"), "JOB=1:3", "log/j.JOB.log",
                             "bash", "-c", "exit $((JOB == 2))"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert "job 2 failed, see log/j.2.log" in result.stderr and "1 of 3 jobs failed" in result.stderr
    assert "exit code 1" in (tmp_path / "log" / "j.2.log").read_text()
