"""Training on several processes (torchrun): two CPU processes (gloo) take the steps that one
process takes on the same total batch, rank 0 alone writes, and one process resumes their run."""

import json
import os
import subprocess
import sys

import torch
from click.testing import CliRunner

from deepsep.commands.train import train as train_group
from deepsep.registry import build_model
from deepsep.train import distributed, load_checkpoint

#: a tiny Conv-TasNet: its norms are per example (no batch norm), so slices of a batch add up to it
TINY = {"enc_kernel_size": 16, "enc_num_feats": 16, "msk_num_feats": 8, "msk_num_hidden_feats": 16,
        "msk_num_layers": 2, "msk_num_stacks": 1}


def _args(dirs, out, steps=4):
    d = {"--speech": "speech/train", "--noise": "noise/train", "--valid-speech": "speech/valid",
         "--valid-noise": "noise/valid"}
    return ["convtasnet", *(x for k, v in d.items() for x in (k, str(dirs / v))), "--valid-dir", str(out.parent / "valid"),
            "--config", json.dumps(TINY), "--steps", str(steps), "--batch-size", "4", "--segment", "0.5", "--lr", "0.5",
            "--threads", "1", "--device", "cpu", "--ckpt-every", "2", "--valid-every", "4", "--no-progress", "-o", str(out)]


def _weights(run):
    return load_checkpoint(run / "last.pt")["model"]


def _assert_same(a, b):
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_two_processes_take_the_steps_of_one_and_one_process_resumes_them(dirs, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "deepsep",
                          "train", *_args(dirs, tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("done: 4 steps") == 1  # rank 0 reports
    runner = CliRunner()
    res = runner.invoke(train_group, _args(dirs, tmp_path / "one"))
    assert res.exit_code == 0, res.output
    _assert_same(_weights(tmp_path / "two"), _weights(tmp_path / "one"))
    torch.manual_seed(0)  # the weights the runs started from: they moved far more than the tolerance
    start = build_model("convtasnet", TINY).state_dict()
    assert max(float((start[k] - v).abs().max()) for k, v in _weights(tmp_path / "one").items()) > 1e-2
    log = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log] == ["start", "valid", "end"] and log[0]["processes"] == 2
    for run in ("one", "two"):  # one process continues the two's run (data stream included) as its own
        res = runner.invoke(train_group, [*_args(dirs, tmp_path / run, steps=6), "--resume"])
        assert res.exit_code == 0, res.output
    _assert_same(_weights(tmp_path / "two"), _weights(tmp_path / "one"))
    assert load_checkpoint(tmp_path / "two" / "last.pt")["step"] == 6


def test_the_batch_size_is_the_total_split_evenly(dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.local_batch(6) == 3 and distributed.shard(torch.arange(6)).tolist() == [3, 4, 5]
    assert not distributed.is_main() and not distributed.active()  # no process group joined
    res = CliRunner().invoke(train_group, [*_args(dirs, tmp_path / "run"), "--batch-size", "3"])
    assert res.exit_code == 2 and "multiple of 2" in res.output  # before any work
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.shard(torch.arange(6)).tolist() == list(range(6)) and distributed.is_main()


def test_one_process_needs_no_process_group():
    assert distributed.world_size() == 1 and distributed.setup("cpu") == torch.device("cpu") and not distributed.active()
