"""One prompt seen from every side (architecture, tokens, next token, layers, attention), one load."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmscope.config.architecture import ArchitectureReport
    from llmscope.forward.attention import AttentionResult
    from llmscope.forward.layers import LayerReport
    from llmscope.loading.model import ModelLike
    from llmscope.decoding.distribution import NextTokenResult
    from llmscope.text.tokens import TokenizationResult


@dataclasses.dataclass(frozen=True)
class PromptReport:
    """``llmscope report``: the views of one prompt, each the result its own command returns."""

    model: str
    prompt: str
    inspect: ArchitectureReport
    tokens: TokenizationResult
    next_token: NextTokenResult
    layers: LayerReport
    attention: AttentionResult

    @property
    def warnings(self) -> list[str]:
        return list(getattr(self.tokens, "warnings", None) or [])


def prompt_report(prompt: str, *, model: ModelLike = None, rows: int = 10) -> PromptReport:
    """Every view of PROMPT from one model load: the weights load once, with eager attention (the
    attention section needs its weights) and serve all five views."""
    from llmscope.text import prompts
    from llmscope.config.architecture import inspect_model
    from llmscope.forward.attention import attention
    from llmscope.forward.layers import layers
    from llmscope.loading.model import load
    from llmscope.decoding.next_token import next_token
    from llmscope.text.tokens import tokenize

    prompts.check_prompt_options(prompt, chat=False, system=None)
    lm = load(model, attn_implementation="eager")  # load() shows its own status
    return PromptReport(
        model=lm.source.display_name,
        prompt=prompt,
        inspect=inspect_model(lm),
        tokens=tokenize(prompt, model=lm),
        next_token=next_token(prompt, model=lm, rows=rows),
        layers=layers(prompt, model=lm, all_tokens=True),
        attention=attention(prompt, model=lm, all_layers=True),
    )
