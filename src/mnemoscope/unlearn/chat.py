"""QA prompts through a tokenizer's chat template, for instruction-tuned (chat) models.

TOFU's fine-tuned chat models and most instruction-tuned models answer questions asked the way
they were trained: as a user turn rendered by the tokenizer's chat template, followed by the
assistant's turn. With ``eval.chat_template=true`` (``mnemoscope unlearn``) every QA prompt of the
unlearning run — the training examples built from QA records, KnowMem, TOFU's scores — is

    apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)

instead of ``"Question: {question}\\nAnswer:"`` (KnowMem's few-shot examples become earlier user /
assistant turns). The rendered text is then encoded like any prompt, so a BOS that the template
writes as text is removed first (the engine's BOS policy adds it once). The answer follows the
prompt with a leading space, as in every other QA prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mnemoscope.errors import MnemoscopeError

PLACEHOLDER = "\x00question\x00"


def require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise MnemoscopeError("eval.chat_template=true needs a tokenizer with a chat template (tokenizer_config.json "
                              "'chat_template'); this model's tokenizer has none: set eval.chat_template=false")


def _render(tokenizer, messages: list[dict]) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text


def chat_prompt(tokenizer) -> Callable[[Sequence[tuple[str, str]], str], str]:
    """``prompt(shots, question)``: the shots as earlier user/assistant turns, then the question."""
    require_chat_template(tokenizer)

    def prompt(shots: Sequence[tuple[str, str]], question: str) -> str:
        messages = []
        for q, a in shots:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return _render(tokenizer, messages + [{"role": "user", "content": question}])

    return prompt


def chat_template(tokenizer) -> str:
    """A ``str.format`` template with one ``{question}`` field: the chat prompt of a question
    (for ``runner.qa_examples`` and ``families.tofu``); other braces are escaped."""
    require_chat_template(tokenizer)
    text = _render(tokenizer, [{"role": "user", "content": PLACEHOLDER}])
    if PLACEHOLDER not in text:
        raise MnemoscopeError("the tokenizer's chat template drops the user's message; set eval.chat_template=false")
    return text.replace("{", "{{").replace("}", "}}").replace(PLACEHOLDER, "{question}")
