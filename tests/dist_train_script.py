"""Run by tests/test_train_loop.py in one process, and in two under a launcher (`torchrun
--nproc_per_node 2` or `accelerate launch --multi_gpu --num_processes 2`; gloo on a CPU):
trains the micro model on a fixed global batch stream, then unlearns (NPO) from it, and writes
both loss curves."""

import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(out: str, grad_accum: int) -> None:
    from accelerate import Accelerator

    from mnemoscope.lab.tiny import Preset, build_model, train_tokenizer
    from mnemoscope.probes.corpus import background_documents
    from mnemoscope.train.loop import (
        TrainConfig,
        causal_lm_loss,
        finish_distributed,
        train,
    )
    from mnemoscope.unlearn import losses
    from mnemoscope.unlearn.runner import UnlearnConfig, text_examples, unlearn

    rows = {"train": [], "unlearn": []}  # rows each process's losses saw: proof the batch was shared out
    npo_loss = losses.npo_loss

    def counting_npo(seq_f, *args, **kwargs):
        rows["unlearn"].append(int(seq_f.shape[0]))
        return npo_loss(seq_f, *args, **kwargs)

    losses.npo_loss = counting_npo

    def counting_lm_loss(model, batch):
        rows["train"].append(int(batch.shape[0]))
        return causal_lm_loss(model, batch)

    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    n = acc.num_processes
    docs = background_documents(200, seed=1)
    tok = train_tokenizer(docs, 400)
    model = build_model(Preset(hidden=32, layers=1, heads=2, intermediate=64, vocab=400, context=64), tok, seed=0)
    rng = np.random.default_rng(0)
    batches = rng.integers(3, len(tok), size=(6, 8, 24))
    cfg = TrainConfig(steps=6, batch_size=8, seq_len=24, lr=3e-3, warmup=2, checkpoint_every=0, grad_accum=grad_accum)
    history = train(model, lambda s: batches[s], cfg, Path(out) / f"ckpt-{n}", loss_fn=counting_lm_loss, accelerator=acc)
    norm = float(sum(p.detach().double().pow(2).sum() for p in model.parameters()))
    # Unlearning: the global batch (8 texts of different lengths) is padded once, then each process
    # takes 4 rows; the loss is a mean of per-text terms, so 2 × 4 rows = 1 × 8 rows.
    forget = text_examples(docs[:16])
    ucfg = UnlearnConfig(method="npo", steps=4, lr=1e-3, batch_size=8, max_length=48, seed=0)
    result = unlearn(model, tok, forget, None, ucfg, Path(out) / f"unlearn-{n}", accelerator=acc)
    (Path(out) / f"rows-{n}-{acc.process_index}.json").write_text(json.dumps(rows))
    if acc.is_main_process:
        unorm = float(sum(p.detach().double().pow(2).sum() for p in result.model.parameters()))
        (Path(out) / f"losses-{n}.json").write_text(json.dumps({
            "loss": [h["loss"] for h in history], "weight_norm": norm,
            "unlearn_loss": [h["loss"] for h in result.history], "unlearn_weight_norm": unorm,
            "unlearn_written": sorted(p.name for p in (Path(out) / f"unlearn-{n}").iterdir())}))
    finish_distributed()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
