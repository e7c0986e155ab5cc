"""The complete loop: gradient accumulation, bf16 flag, resume with accumulation, batch splitting,
and two CPU processes (torch.distributed / gloo, as `accelerate launch` runs them)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import build_model
from mnemoscope.train.loop import TrainConfig, split_batch, train

from .conftest import MICRO

ROWS = np.random.default_rng(0).integers(3, 500, size=(8, 8, 32))


def _run(tokenizer, out, *, grad_accum=1, stop_after=None, bf16=False, steps=6):
    model = build_model(MICRO, tokenizer, seed=0)
    cfg = TrainConfig(steps=steps, batch_size=8, seq_len=32, lr=3e-3, warmup=2, checkpoint_every=2,
                      grad_accum=grad_accum, bf16=bf16)
    history = train(model, lambda s: ROWS[s], cfg, out, stop_after=stop_after)
    return model, history


def test_grad_accum_equals_one_big_batch(tokenizer, tmp_path):
    big, h1 = _run(tokenizer, tmp_path / "one")
    acc, h4 = _run(tokenizer, tmp_path / "four", grad_accum=4)
    np.testing.assert_allclose([r["loss"] for r in h4], [r["loss"] for r in h1], rtol=1e-5)
    # Adam divides by sqrt(v): where a gradient is ~0, float32 summation-order noise becomes a
    # step of up to ~lr. Six steps at lr 3e-3 move a weight by ≤ 1.8e-2; 1e-4 is 0.5% of that
    # (2e-5 failed on one AMD EPYC at 2.2e-5 for 1 of 8192 elements).
    for p, q in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-4)
    assert h1[-1]["loss"] < h1[0]["loss"]


def test_resume_with_grad_accum_equals_uninterrupted(tokenizer, tmp_path):
    full, h_full = _run(tokenizer, tmp_path / "full", grad_accum=2)
    _run(tokenizer, tmp_path / "cut", grad_accum=2, stop_after=3)
    resumed, h_res = _run(tokenizer, tmp_path / "cut", grad_accum=2)
    assert [r["loss"] for r in h_res] == [r["loss"] for r in h_full]
    for p, q in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)


def test_bf16_flag_is_a_no_op_on_cpu(tokenizer, tmp_path):
    a, ha = _run(tokenizer, tmp_path / "fp32", steps=2)
    b, hb = _run(tokenizer, tmp_path / "bf16", steps=2, bf16=True)
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]


def test_split_batch():
    rows = np.arange(12).reshape(6, 2)
    with_meta = split_batch({"step": 3, "retain": None, "rows": rows}, 2)
    assert [p["step"] for p in with_meta] == [3, 3] and with_meta[1]["retain"] is None
    assert with_meta[1]["rows"].tolist() == rows[3:].tolist()
    parts = split_batch(rows, 3)
    assert [p.tolist() for p in parts] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert split_batch(rows, 3, 1).tolist() == [[4, 5], [6, 7]]
    d = split_batch({"forget": rows, "retain": rows + 100}, 2, 1)
    assert d["forget"].tolist() == [[6, 7], [8, 9], [10, 11]] and d["retain"][0].tolist() == [106, 107]
    assert split_batch(rows, 1, 0) is rows
    with pytest.raises(MnemoscopeError, match="equal parts"):
        split_batch(rows, 4)
    with pytest.raises(MnemoscopeError, match="cannot split"):
        split_batch("text", 2)
    with pytest.raises(MnemoscopeError, match="grad_accum"):
        TrainConfig(grad_accum=0).validate()


def test_sharded_accelerators_are_refused_before_anything_is_written(tokenizer, tmp_path):
    from accelerate.utils import DistributedType

    class Sharded:  # what train() reads of an FSDP / DeepSpeed accelerator
        def __init__(self, kind):
            self.distributed_type = kind

    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(MnemoscopeError, match=f"{kind.name} sharding is not supported.*--multi_gpu") as err:
            train(build_model(MICRO, tokenizer), lambda s: ROWS[s], TrainConfig(steps=1, batch_size=8, seq_len=32),
                  tmp_path / "out", accelerator=Sharded(kind))
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_reproduce_one_process_at_the_same_global_batch(tmp_path):
    """Training: 2 gloo processes × 1 micro-batch of 4 rows vs 1 process × 2 micro-batches of 4
    rows. Unlearning (NPO) after it: 2 processes × 4 rows vs 1 process × 8 rows."""
    script = Path(__file__).with_name("dist_train_script.py")
    root = Path(__file__).parents[1]  # this checkout's sources first, whatever the venv installed
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(script), str(tmp_path), "2"], check=True, env=env, timeout=300)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(tmp_path), "1"]
    done = subprocess.run(launch, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    one = json.loads((tmp_path / "losses-1.json").read_text())
    two = json.loads((tmp_path / "losses-2.json").read_text())
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    assert two["weight_norm"] == pytest.approx(one["weight_norm"], rel=1e-6)
    assert len(two["unlearn_loss"]) == 4
    np.testing.assert_allclose(two["unlearn_loss"], one["unlearn_loss"], rtol=1e-5)
    assert two["unlearn_weight_norm"] == pytest.approx(one["unlearn_weight_norm"], rel=1e-6)
    assert two["unlearn_written"] == one["unlearn_written"]  # one writer: the same files, once
    # each of the two processes saw its half of every batch; the single process saw all of it
    # (in 2 micro-batches of 4 when training, as grad_accum=2)
    for rank in (0, 1):
        rows = json.loads((tmp_path / f"rows-2-{rank}.json").read_text())
        assert rows == {"train": [4] * 6, "unlearn": [4] * 4}
    assert json.loads((tmp_path / "rows-1-0.json").read_text()) == {"train": [4] * 12, "unlearn": [8] * 4}
