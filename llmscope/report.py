"""One prompt seen from every side (architecture, tokens, next token, layers, attention), one load."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmscope.architecture import ArchitectureReport
    from llmscope.attention import AttentionResult
    from llmscope.layers import LayerReport
    from llmscope.loading import ModelLike
    from llmscope.distribution import NextTokenResult
    from llmscope.tokens import TokenizationResult


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


def prompt_report(prompt: str, *, model: ModelLike = None, top_k: int = 10, **load_options: Any) -> PromptReport:
    """Every view of PROMPT from one model load: the weights load once, with eager attention (the
    attention section needs its weights) and serve all five views."""
    from llmscope import prompts
    from llmscope.architecture import inspect_model
    from llmscope.attention import attention
    from llmscope.layers import layers
    from llmscope.loading import load
    from llmscope.next_token import next_token
    from llmscope.report_progress import reporter
    from llmscope.tokens import tokenize

    prompts.check_prompt_options(prompt, chat=False, system=None)
    with reporter().status("Loading the model"):
        lm = load(model, attn_implementation="eager", **load_options)
    return PromptReport(
        model=lm.source.display_name,
        prompt=prompt,
        inspect=inspect_model(lm),
        tokens=tokenize(prompt, model=lm),
        next_token=next_token(prompt, model=lm, top_k=top_k),
        layers=layers(prompt, model=lm, all_tokens=True),
        attention=attention(prompt, model=lm, all_layers=True),
    )
