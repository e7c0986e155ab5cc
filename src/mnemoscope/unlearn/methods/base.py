"""What an unlearning method is: a loss on the shared training loop, what it needs, how it ends.

A method is one module in ``unlearn/methods/`` holding ``METHOD``, an instance of
:class:`Method` (or of a subclass that overrides its hooks). The runner (``unlearn.runner``)
knows no method by name: it asks the method what it needs (a retain set, a frozen reference
copy of the model, a paired example for each forget example), which module to train
(``trainee``: the model itself, or a copy / a smaller model the method builds from it), calls
``start`` before training, ``loss`` at every step, ``stop`` after, and ``result_model`` for the
model to evaluate (the trained model; the original with new weights, e.g. a negated task
vector; or a composite that combines the original with the trained module at decoding time,
``engine.combined.CombinedLogits``). ``methods.METHODS`` lists them.

A method object is shared by every run and keeps no state of its own: what a run needs to keep
(RMU's layer taps and control vector) is what ``start`` returns; the run holds it, hands it to
the loss as ``Step.state`` and back to ``stop``. Nothing under ``methods/`` imports the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from mnemoscope.unlearn import losses as L


class Step:
    """What a loss may ask about one training step, each computed once on demand: the model's
    and the frozen reference's logits on the forget (``"forget"``) or retain (``"retain"``)
    batch, sequence log-likelihoods log π(y|x), per-example NLL −log π(y|x)/|y|, per-example mean
    token probability, token counts |y| and the next-token mask. A method with ``needs_pairs``
    also gets the ``"pair"`` batch: the paired example of each forget example, row for row.
    ``state``: what the method's ``start`` returned for this run (None by default)."""

    def __init__(self, model, reference, batches: dict, step: int = -1, state=None):
        self.model, self.reference, self.batches, self.step, self.state = model, reference, batches, step, state
        self._cache: dict = {}

    def _memo(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def batch(self, which: str):
        b = self.batches.get(which)
        if b is None:
            raise RuntimeError(f"the runner gave no {which} batch to a method that needs one")
        return b

    def logits(self, which: str) -> torch.Tensor:
        b = self.batch(which)
        return self._memo(("logits", which),
                          lambda: self.model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits)

    def ref_logits(self, which: str) -> torch.Tensor:
        b = self.batch(which)

        def run():
            with torch.no_grad():
                return self.reference(input_ids=b.input_ids, attention_mask=b.attention_mask).logits

        return self._memo(("ref_logits", which), run)

    def seq_logprob(self, which: str) -> torch.Tensor:
        return self._memo(("seq", which), lambda: L.sequence_logprob(self.logits(which), self.batch(which).labels))

    def ref_seq_logprob(self, which: str) -> torch.Tensor:
        return self._memo(("ref_seq", which),
                          lambda: L.sequence_logprob(self.ref_logits(which), self.batch(which).labels))

    def token_prob(self, which: str) -> torch.Tensor:
        """Per-example mean probability of the scored tokens (1/|y|)·Σ p(y_i | ·)."""
        return self._memo(("prob", which), lambda: L.mean_token_prob(self.logits(which), self.batch(which).labels))

    def counts(self, which: str) -> torch.Tensor:
        return L.token_counts(self.batch(which).labels)

    def nll(self, which: str) -> torch.Tensor:
        """Per-example mean NLL (every example scores ≥ 1 token)."""
        return self._memo(("nll", which), lambda: L.sequence_nll(self.logits(which), self.batch(which).labels))

    def mask(self, which: str) -> torch.Tensor:
        return L.next_token_mask(self.batch(which).labels)


@dataclass
class Method:
    """An unlearning method. ``defaults``: its hyperparameters with published defaults (the user
    overrides them by name); ``extra_hparams``: further accepted names without a default;
    ``retain_term``: "" (none), "nll" (+ w·mean NLL on R) or "kl" (+ w·KL(π_ref ‖ π_θ) on R),
    added to ``forget_loss`` with w = ``retain_weight`` (a retain term implies ``needs_retain``).
    A hyperparameter whose default is a string (e.g. FLAT's divergence) stays a string; every
    other is a float. ``needs_pairs``: the method's ``paired(example, hp)`` gives each forget
    example a partner (e.g. a template answer), batched alongside it. ``combines``: the result
    is a composite of the original and the trained module (``result_model``), not one set of
    weights. ``needs_refusals``: each forget example must carry a refusal answer to its prompt
    (``unlearn.refusals``); without one the run is refused in one line."""

    name: str
    description: str
    defaults: dict = field(default_factory=dict)
    needs_reference: bool = False
    needs_retain: bool = False
    retain_term: str = ""
    extra_hparams: tuple[str, ...] = ()
    lora: bool = True  # can train LoRA adapters instead of every weight
    needs_pairs: bool = False
    combines: bool = False
    needs_refusals: bool = False  # every forget example needs a refusal answer (``Example.refusal``)
    lab: dict = field(default_factory=dict)  # hyperparameters tuned for the embedded tiny lab, if they differ

    def __post_init__(self) -> None:
        self.defaults = MappingProxyType(dict(self.defaults))
        self.lab = MappingProxyType(dict(self.lab))
        if self.retain_term not in ("", "nll", "kl"):
            raise ValueError(f"retain_term must be '', 'nll' or 'kl', got {self.retain_term!r}")
        self.needs_retain = self.needs_retain or bool(self.retain_term)

    # ------------------------------------------------------------------ the loss
    def forget_loss(self, step: Step, hp: dict) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, step: Step, hp: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """``forget_loss`` plus the retain term; extras logged with the step (``nll_forget``)."""
        loss = self.forget_loss(step, hp)
        w = hp.get("retain_weight", 1.0)
        if self.retain_term == "nll":
            loss = loss + w * step.nll("retain").float().mean()
        elif self.retain_term == "kl":
            loss = loss + w * L.kl_retain(step.logits("retain"), step.ref_logits("retain"), step.mask("retain"))
        return loss, self.extras(step)

    def extras(self, step: Step) -> dict[str, float]:
        return {"nll_forget": float(step.nll("forget").detach().mean())}

    # ------------------------------------------------------------------ hooks (defaults: none)
    def check(self, hp: dict) -> None:
        """Refuse bad hyperparameter values with a one-line MnemoscopeError, before any work."""

    def start(self, model, reference, hp: dict, seed: int):
        """Before training: the run's state this method needs (e.g. a layer's hooks), or None. The
        run keeps it and hands it to every ``Step`` (``step.state``) and to :meth:`stop`."""
        return None

    def stop(self, state) -> None:
        """After training, also when it failed: release ``state`` (e.g. remove hooks)."""

    def trainee(self, model, hp: dict):
        """The module the loop trains: the model itself (default), or one the method builds from
        it (a copy to fine-tune further, a smaller assistant). Must not modify ``model``."""
        return model

    def result_model(self, model, original_state: dict, trained, hp: dict):
        """The model to evaluate, from the original ``model`` (its weights before unlearning are
        ``original_state``) and the ``trained`` module: by default the trained module. A method
        may write new weights into ``model`` and return it (task vectors) or return a composite
        (``engine.combined.CombinedLogits``) that references both without copying."""
        return trained

    def paired(self, example, hp: dict):
        """The partner of one forget example (``unlearn.examples.Example``), for ``needs_pairs``."""
        raise NotImplementedError(f"method {self.name} declares needs_pairs but defines no paired()")
