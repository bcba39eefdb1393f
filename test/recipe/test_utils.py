"""The recipe's own shell utilities: option parsing and the local job runner."""

import signal
import subprocess
import time
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


def _pool(script, tmp_path, env=None):
    """Run ``script`` after sourcing utils/job_pool.sh with ``set -euo pipefail`` (as s3net.sh)."""
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . {UTILS}/job_pool.sh; {script}"], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


def _max_running(events):
    """The most jobs running at once, from ordered 'start'/'end' lines."""
    running = most = 0
    for event in events:
        running += 1 if event.startswith("start") else -1
        most = max(most, running)
    return most


def test_job_pool_runs_at_most_n_jobs_at_a_time(tmp_path):
    script = ('job() { echo "start $1" >> events; sleep 1; echo "end $1" >> events; echo "$1" > "done.$1"; }; '
              'pool_init 2 0 local; for k in 1 2 3 4 5; do pool_run "job $k" job "$k"; done; pool_wait; echo ok')
    result = _pool(script, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert _max_running((tmp_path / "events").read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.glob("done.*")) == [f"done.{k}" for k in range(1, 6)]


def test_job_pool_one_job_at_a_time_and_bad_size(tmp_path):
    script = ('job() { echo "start $1" >> events; sleep 0.2; echo "end $1" >> events; }; '
              'pool_init 1 0 local; for k in 1 2 3; do pool_run "job $k" job "$k"; done; pool_wait')
    assert _pool(script, tmp_path).returncode == 0
    assert _max_running((tmp_path / "events").read_text().splitlines()) == 1
    result = _pool("pool_init 0 0 local", tmp_path)
    assert result.returncode == 1 and "positive integer, got '0'" in result.stderr


def test_job_pool_names_failed_jobs_after_the_others_finished(tmp_path):
    # a job is a shell function run with set -e: its first failing command ends it
    script = ('job() { [ "$1" != 2 ]; [ "$1" != 4 ]; touch "done.$1"; }; pool_init 2 0 local; '
              'for k in 1 2 3 4 5; do pool_run "job$k.log" job "$k"; done; '
              'pool_wait || { echo "stage failed"; exit 1; }')
    result = _pool(script, tmp_path)
    assert result.returncode == 1 and "stage failed" in result.stdout
    assert "2 job(s) failed: job2.log job4.log" in result.stderr
    assert sorted(p.name for p in tmp_path.glob("done.*")) == ["done.1", "done.3", "done.5"]


def test_job_pool_gives_each_local_job_its_own_gpus(tmp_path):
    script = ('job() { echo "$1 ${CUDA_VISIBLE_DEVICES:-none}" >> gpus; sleep 0.5; }; pool_init 2 2 local; '
              'for k in 1 2; do pool_run "job $k" job "$k"; done; pool_wait')
    assert _pool(script, tmp_path, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}).returncode == 0
    assert sorted((tmp_path / "gpus").read_text().splitlines()) == ["1 4,5", "2 6,7"]
    (tmp_path / "gpus").unlink()
    assert _pool(script, tmp_path).returncode == 0  # default: GPUs 0..3
    assert sorted((tmp_path / "gpus").read_text().splitlines()) == ["1 0,1", "2 2,3"]
    result = _pool(script, tmp_path, {"CUDA_VISIBLE_DEVICES": "0,1,2"})
    assert result.returncode == 1 and "need 4 GPUs; CUDA_VISIBLE_DEVICES has 3 (0,1,2)" in result.stderr
    # another backend (Slurm) leaves the GPUs to the cluster
    (tmp_path / "gpus").unlink()
    assert _pool(script.replace("2 2 local", "2 2 slurm"), tmp_path).returncode == 0
    assert sorted((tmp_path / "gpus").read_text().splitlines()) == ["1 none", "2 none"]


def test_job_pool_interrupted_stops_its_jobs_and_their_children(tmp_path):
    script = (f'. {UTILS}/job_pool.sh; job() {{ bash -c "echo \\$\\$ >> pids; exec sleep 60"; }}; '
              'pool_init 2 0 local; for k in 1 2; do pool_run "job $k" job; done; pool_wait')
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    pids = tmp_path / "pids"
    for _ in range(100):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        time.sleep(0.1)
    sleepers = [int(pid) for pid in pids.read_text().split()]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 130 and "stopping the running jobs" in proc.stderr.read()
    time.sleep(0.5)
    assert not [pid for pid in sleepers if _alive(pid)]


def _alive(pid):
    """Whether process ``pid`` runs (exists and is not a zombie left to a non-reaping init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
