"""``--use_wandb`` (ESPnet's option) with W&B offline: the per-language losses reach the run.

Offline, W&B keeps the run only in its transaction log ``<output_dir>/wandb/offline-run-*/
run-<id>.wandb`` (``wandb sync`` would upload it): a LevelDB-style log of the run's
protobuf records, read back here.
"""

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from language_data_dirs import LANGS, data_args, lang_data

wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")

CONF = Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf/pretrain_xlsr_tiny.yaml"

# the transaction log: a 7-byte file header, then records in 32 KiB blocks, each
# fragment with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last)
FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768


def read_transaction_log(path: Path) -> List:
    """The protobuf records of a ``run-<id>.wandb`` file."""
    buf = path.read_bytes()
    assert buf[:len(FILE_HEADER)] == FILE_HEADER, f"{path}: not a W&B transaction log"
    records, pos, pending = [], len(FILE_HEADER), b""
    while pos + 7 <= len(buf):
        if BLOCK - pos % BLOCK < 7:  # block trailer: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", buf[pos:pos + 7])
        pending += buf[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def history_and_summary(records) -> Tuple[List[Dict], Dict]:
    """The rows of ``wandb.log`` calls and the final summary."""
    history, summary = [], {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    return history, summary


def test_use_wandb_offline_logs_the_loss_per_language(tmp_path):
    data = lang_data(tmp_path / "data")
    out = tmp_path / "exp"
    home = tmp_path / "wandb_home"  # W&B's settings, cache and data: nothing under ~
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
               WANDB_DISABLE_CODE="true", WANDB_DIR=str(home), WANDB_CONFIG_DIR=str(home / "config"),
               WANDB_CACHE_DIR=str(home / "cache"), WANDB_DATA_DIR=str(home / "data"))
    cmd = [sys.executable, "-m", "espnet_s3net.bin.ssl_train", "--config", str(CONF), "--output_dir", str(out),
           "--ngpu", "0", "--max_epoch", "1", "--num_iters_per_epoch", "2", "--batch_bins", "32000",
           "--use_wandb", "true", "--wandb_project", "s3net_test", *data_args(data)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (log,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    history, summary = history_and_summary(read_transaction_log(log))
    # ESPnet's reporter: every log_interval (1 here) "metrics/<key>", per epoch
    # "<train|valid>/<train|valid>_<key>_epoch"; the trainer adds "loss_<lang>" next to "loss"
    # (NaN in a step of another language)
    steps = [row for row in history if "metrics/loss" in row]
    assert len(steps) == 2
    for row in steps:
        (lang,) = [lang for lang in LANGS if math.isfinite(row.get(f"metrics/loss_{lang}", math.nan))]
        assert row[f"metrics/loss_{lang}"] == row["metrics/loss"]
    (epoch,) = [row for row in history if "epoch" in row]
    assert epoch["epoch"] == 1
    assert any(f"train/train_loss_{lang}_epoch" in epoch for lang in LANGS)
    # validation sees every utterance: both languages
    for lang in LANGS:
        assert math.isfinite(epoch[f"valid/valid_loss_{lang}_epoch"])
    for key, value in epoch.items():
        if key.startswith(("train/", "valid/")) and value == value:  # not NaN
            assert summary[key] == value, key
