"""One sampling path: decoding settings and their validation, transformers' logits processors, the
pick, the stop ids and the model's own log-probabilities.

``generate``, ``compare`` and ``next-token --steps`` all choose tokens here, so the same strategy,
options and seed choose the same tokens in all three. The processors are transformers' own
(``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ...) in ``model.generate``'s order; this module is
the one place llmscope builds them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmscope.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import LogitsProcessorList

STRATEGIES = ("greedy", "sample", "top-k", "top-p", "min-p", "typical", "beam")
SAMPLING = ("sample", "top-k", "top-p", "min-p", "typical")
ALIASES = {
    "temperature": "sample",
    "sampling": "sample",
    "topk": "top-k",
    "top_k": "top-k",
    "topp": "top-p",
    "top_p": "top-p",
    "nucleus": "top-p",
    "minp": "min-p",
    "min_p": "min-p",
    "typical-p": "typical",
    "typical_p": "typical",
    "beam-search": "beam",
    "beams": "beam",
}
DEFAULT_COMPARE = ("greedy", "sample", "top-k", "top-p", "beam")

DEFAULT_TEMPERATURE = 1.0
# Below this, logits divided by the temperature overflow to inf and softmax gives NaN (sampling would
# crash); 0 means greedy instead.
MIN_TEMPERATURE = 1e-4
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 0.9
DEFAULT_MIN_P = 0.05
DEFAULT_TYPICAL_P = 0.9
DEFAULT_NUM_BEAMS = 4
# Beam search keeps beams x vocabulary scores and beams x the KV cache; past a few hundred beams it
# only costs memory (work_estimate checks the memory of smaller counts against the machine).
MAX_NUM_BEAMS = 256
DEFAULT_MAX_NEW_TOKENS = 40

# The strategy whose own parameter each option is.
_OWN_PARAMETER = {"top-k": "top_k", "top-p": "top_p", "min-p": "min_p", "typical": "typical_p", "beam": "num_beams"}
# Well-known end-of-turn tokens: in chat mode generation also stops at these.
END_OF_TURN = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>")


# --------------------------------------------------------------------------------------------
# Settings and their validation (no torch: the CLI validates before anything loads)


@dataclasses.dataclass(frozen=True)
class DecodingSettings:
    """One strategy with every value it uses, named as in transformers' GenerationConfig."""

    strategy: str
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    num_beams: int = 1
    repetition_penalty: float = 1.0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 0
    # What the values given turned into, said to the user (e.g. temperature=0 made the pick greedy).
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def do_sample(self) -> bool:
        return self.strategy in SAMPLING and self.temperature > 0

    @property
    def label(self) -> str:
        """Short name with the values that matter: ``top-p 0.9``, ``sample T=0.7``, ``beam 4``."""
        parts = [self.strategy]
        if self.strategy == "top-k":
            parts.append(str(self.top_k))
        elif self.strategy == "top-p":
            parts.append(f"{self.top_p:g}")
        elif self.strategy == "min-p":
            parts.append(f"{self.min_p:g}")
        elif self.strategy == "typical":
            parts.append(f"{self.typical_p:g}")
        elif self.strategy == "beam":
            parts.append(str(self.num_beams))
        own = _OWN_PARAMETER.get(self.strategy)
        for name, value in (("top-k", self.top_k), ("top-p", self.top_p), ("min-p", self.min_p),
                            ("typical", self.typical_p)):
            if value is not None and _OWN_PARAMETER.get(name) != own:  # a filter combined with the strategy's own
                parts.append(f"{name} {value:g}")
        if self.strategy in SAMPLING and (self.strategy == "sample" or self.temperature != 1.0):
            parts.append(f"T={self.temperature:g}")
        if self.repetition_penalty != 1.0:
            parts.append(f"rep={self.repetition_penalty:g}")
        return " ".join(parts)


def parse_strategy(name: str) -> str:
    """The canonical strategy name for NAME (aliases such as ``nucleus`` accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise UsageError(f"unknown strategy {name.strip()!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
    return key


def validate_values(
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
) -> None:
    """Refuse out-of-range values with a UsageError naming the parameter."""

    def bad(name: str, value: Any, rule: str) -> UsageError:
        return UsageError(f"`{name}={value}`: {rule}")

    if temperature is not None and not math.isfinite(temperature):
        raise bad("temperature", temperature, "must be a finite number (0 always picks the most likely token; "
                  "1 keeps the model's own distribution)")
    if temperature is not None and temperature < 0:
        raise bad("temperature", temperature, "must be 0 or more (0 always picks the most likely token)")
    if temperature is not None and 0 < temperature < MIN_TEMPERATURE:
        raise bad("temperature", temperature, f"must be 0 or at least {MIN_TEMPERATURE:g} (smaller values "
                  "overflow; 0 always picks the most likely token)")
    if top_k is not None and top_k < 1:
        raise bad("top_k", top_k, "must be 1 or more")
    if top_p is not None and not (0 < top_p <= 1):
        raise bad("top_p", top_p, "must be in (0, 1]: more than 0, at most 1")
    if min_p is not None and not (0 <= min_p <= 1):
        raise bad("min_p", min_p, "must be in [0, 1]")
    if typical_p is not None and not (0 < typical_p <= 1):
        raise bad("typical_p", typical_p, "must be in (0, 1]")
    if num_beams is not None and num_beams < 1:
        raise bad("num_beams", num_beams, "must be 1 or more")
    if num_beams is not None and num_beams > MAX_NUM_BEAMS:
        raise bad("num_beams", num_beams, f"must be at most {MAX_NUM_BEAMS} (each beam keeps its own scores "
                  "over the whole vocabulary and its own KV cache; a few beams already find most of what many do)")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise bad("max_new_tokens", max_new_tokens, "must be 1 or more")
    if repetition_penalty is not None and not (MIN_TEMPERATURE <= repetition_penalty <= 1 / MIN_TEMPERATURE):
        # beyond these the penalised logits overflow to inf and sampling gets NaN probabilities
        raise bad("repetition_penalty", repetition_penalty,
                  f"must be from {MIN_TEMPERATURE:g} to {1 / MIN_TEMPERATURE:g} (1 means no penalty)")
    if seed is not None and not 0 <= seed <= 2**64 - 1:
        raise bad("seed", seed, "must be 0 or more, and below 2**64")


def infer_strategy(
    *, temperature: float | None, top_k: int | None, top_p: float | None, min_p: float | None,
    typical_p: float | None, num_beams: int | None,
) -> str:
    """The strategy the options imply when none is named: greedy unless a sampling option is given."""
    if num_beams is not None and num_beams > 1:
        return "beam"
    for strategy, value in (("top-p", top_p), ("top-k", top_k), ("min-p", min_p), ("typical", typical_p)):
        if value is not None:
            return strategy
    if temperature is not None and temperature > 0:
        return "sample"
    return "greedy"


def settings_for(
    strategy: str | None = None,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    combine: bool = True,
) -> DecodingSettings:
    """Validated settings for one strategy; the strategy's own parameter gets its default if not given.

    ``combine=True`` (generate): every sampling option given applies, as in ``model.generate``
    (``top-p`` with ``--top-k 40`` filters by both), and options that cannot apply are refused.
    ``combine=False`` (compare): each option belongs to its own strategy and other rows ignore it.
    """
    validate_values(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        num_beams=num_beams, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty, seed=seed,
    )
    inferred = strategy is None
    if strategy is None:
        strategy = infer_strategy(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p, num_beams=num_beams
        )
    strategy = parse_strategy(strategy)
    notes: tuple[str, ...] = ()
    if temperature == 0 and (strategy in SAMPLING or inferred):  # the course's rule: temperature 0 is greedy
        moot = [k for k, v in {"top_k": top_k, "top_p": top_p, "min_p": min_p, "typical_p": typical_p}.items()
                if v is not None]
        notes = ("temperature=0 always picks the most likely token: "
                 + ("greedy" if strategy == "greedy" else f"{strategy} runs as greedy")
                 + (f" ({', '.join(moot)} left nothing to filter)" if moot else ""),)
        strategy, temperature, top_k, top_p, min_p, typical_p = "greedy", None, None, None, None, None
    given = {"top_k": top_k, "top_p": top_p, "min_p": min_p, "typical_p": typical_p}
    defaults = {"top_k": DEFAULT_TOP_K, "top_p": DEFAULT_TOP_P, "min_p": DEFAULT_MIN_P, "typical_p": DEFAULT_TYPICAL_P}
    values: dict[str, Any] = {k: None for k in given}
    own = _OWN_PARAMETER.get(strategy)
    if strategy in SAMPLING:
        if combine:
            values.update({k: v for k, v in given.items() if v is not None})
        if own is not None:
            values[own] = given[own] if given[own] is not None else defaults[own]
    elif combine:
        extra = [(k, v) for k, v in {**given, "temperature": temperature}.items() if v is not None and v != 0]
        if extra:
            raise UsageError(
                f"`{extra[0][0]}={extra[0][1]}` has no effect with `strategy={strategy}`",
                hint="pick a sampling strategy: " + ", ".join(SAMPLING),
            )
    beams = 1
    if strategy == "beam":
        beams = num_beams if num_beams is not None else DEFAULT_NUM_BEAMS
    elif combine and num_beams is not None and num_beams > 1:
        raise UsageError(f"`num_beams={num_beams}` needs `strategy=beam`")
    return DecodingSettings(
        strategy=strategy,
        temperature=DEFAULT_TEMPERATURE if temperature is None or strategy not in SAMPLING else float(temperature),
        num_beams=beams,
        repetition_penalty=1.0 if repetition_penalty is None else float(repetition_penalty),
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else int(max_new_tokens),
        seed=0 if seed is None else int(seed),
        notes=notes,
        **values,
    )


def as_settings(settings: DecodingSettings | str | None) -> DecodingSettings:
    """SETTINGS as given, a strategy name with its defaults, or greedy for None."""
    if isinstance(settings, DecodingSettings):
        return settings
    if settings is None or isinstance(settings, str):
        return settings_for(settings)
    raise UsageError(f"`settings` takes DecodingSettings or a strategy name, not {type(settings).__name__}")


def parse_strategy_list(text: str | Sequence[str | DecodingSettings], **options: Any) -> list[DecodingSettings]:
    """``greedy,top-p,top-p=0.5,beam=8`` -> settings; ``NAME=VALUE`` sets that strategy's own value.

    The value is the temperature for ``sample``, k for ``top-k``, p for ``top-p``/``min-p``/
    ``typical`` and the number of beams for ``beam``.
    """
    items = [s for s in text.split(",")] if isinstance(text, str) else list(text)
    validate_values(**options)
    result: list[DecodingSettings] = []
    for item in items:
        if isinstance(item, DecodingSettings):
            result.append(item)
            continue
        name, _, value = item.partition("=")
        if not name.strip():
            raise UsageError(f"empty strategy name in {text!r}" if isinstance(text, str) else "empty strategy name")
        strategy = parse_strategy(name)
        own = dict(options)
        if value.strip():
            key = "temperature" if strategy == "sample" else _OWN_PARAMETER.get(strategy)
            if key is None:
                raise UsageError(f"strategy {strategy!r} takes no value (got {item.strip()!r})")
            try:
                number: float | int = int(value) if key in ("top_k", "num_beams") else float(value)
            except ValueError:
                raise UsageError(f"{item.strip()!r}: {value.strip()!r} is not a number") from None
            own[key] = number
        result.append(settings_for(strategy, combine=False, **own))
    if not result:
        raise UsageError("no strategies given", hint=f"e.g. `strategies={','.join(DEFAULT_COMPARE)}`")
    return result


# --------------------------------------------------------------------------------------------
# Processors, the pick, stop ids, log-probabilities (torch from here on)


def logits_processors(settings: DecodingSettings) -> LogitsProcessorList:
    """The transformers processors for one strategy, in ``model.generate``'s order."""
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
    )

    procs = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if not settings.do_sample:
        return procs
    if settings.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k is not None:
        procs.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p is not None and settings.top_p < 1.0:
        procs.append(TopPLogitsWarper(settings.top_p))
    if settings.min_p is not None and settings.min_p > 0:
        procs.append(MinPLogitsWarper(settings.min_p))
    if settings.typical_p is not None and settings.typical_p < 1.0:
        procs.append(TypicalLogitsWarper(settings.typical_p))
    return procs


def random_generator(settings: DecodingSettings, device: Any) -> torch.Generator | None:
    """The seeded ``torch.Generator`` a sampling strategy draws with; None when the pick is the argmax."""
    import torch

    if not settings.do_sample:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(settings.seed)
    return generator


def pick(scores: torch.Tensor, generator: torch.Generator | None) -> int:
    """The chosen id from (1, vocab) processed scores: argmax without a generator, else one seeded draw."""
    import torch

    if generator is None:
        return int(torch.argmax(scores[0]))
    probs = torch.softmax(scores, dim=-1)  # (1, vocab); filtered tokens are 0
    return int(torch.multinomial(probs[0], 1, generator=generator))


def choose(
    processors: LogitsProcessorList, input_ids: torch.Tensor, logits: torch.Tensor, generator: torch.Generator | None
) -> tuple[int, int]:
    """One decoding step: ``logits`` (1, vocab) of the text ``input_ids`` (1, tokens) -> the chosen id,
    and how many tokens the pick chose from (1 for the argmax; those the filters kept when sampling)."""
    import torch

    scores = processors(input_ids, logits.float().clone())  # (1, vocab)
    kept = 1 if generator is None else int(torch.isfinite(scores[0]).sum())
    return pick(scores, generator), kept


def stop_token_ids(model: Any, tokenizer: Any, config: Any, *, chat: bool = False) -> list[int]:
    """The ids that end generation: the generation config's EOS (as ``model.generate`` uses), and in
    chat mode also the tokenizer's EOS and well-known end-of-turn tokens."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(gen, "eos_token_id", None), getattr(config, "eos_token_id", None)):
        if value is not None:
            ids.extend(value if isinstance(value, (list, tuple)) else [value])
            break
    if chat or not ids:
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
    if chat:  # an end-of-turn marker counts where it is a special token: Gemma's "</s>" is HTML's tag
        vocab = tokenizer.get_vocab()
        special = set(tokenizer.all_special_tokens) | {
            str(token) for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values()
            if getattr(token, "special", False)}
        ids.extend(vocab[t] for t in END_OF_TURN if t in vocab and t in special)
    return sorted(set(int(i) for i in ids))


def logprobs(logits: torch.Tensor) -> torch.Tensor:
    """The model's own log-probabilities (softmax of the raw logits, in float32), over the last axis."""
    import torch

    return torch.log_softmax(logits.float(), dim=-1)


def token_logprobs(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """log P of each id in ``ids`` under the matching row of ``logits`` (len(ids), vocab) -> (len(ids),)."""
    import torch

    index = torch.tensor(list(ids), device=logits.device)[:, None]  # (len(ids), 1)
    return logprobs(logits).gather(-1, index)[:, 0]
