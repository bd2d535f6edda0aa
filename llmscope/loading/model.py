"""What to load (``LoadSpec``) -> a config, a tokenizer, or a model ready to run (``LoadedModel``).

Every command reaches a model through ``load`` and the three ``load_*`` functions here, so the rules
live in one place: no repository code runs without ``trust_remote_code``; checkpoints load through
safetensors, or torch's weights-only unpickler (transformers' default, never overridden); library
errors become ``LlmscopeError``s with a hint (``library_errors.py``). The parts live beside this
module: device and dtype in ``devices.py``, the RAM guard in ``ram_guard.py``, GGUF files in
``gguf_cache.py``, the Hub probe in ``hub.py``, the model class and the meta-device build in ``meta.py``.

Every API function takes its model in the same forms (``ModelLike``): None (the embedded default),
a hub id, a folder or .gguf path (str or PathLike), a ``LoadSpec``, or a ``LoadedModel``, which is
used as it is and never loaded again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Union

from llmscope.loading.devices import resolve_device, resolve_dtype
from llmscope.errors import ModelFormatError, UsageError
from llmscope.loading.gguf_cache import ensure_gguf_stage, gguf_file_for
from llmscope.loading.hub import hub_reachable
from llmscope.loading.meta import build_meta_model, infer_model_type, is_masked_lm, model_class
from llmscope.loading.ram_guard import check_weights_fit
from llmscope.progress import reporter
from llmscope.loading.resolve import ModelSource
from llmscope.loading.library_errors import has_weights_file, missing_weights, quiet_transformers, translate_errors

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """What to load and how: the model options of every command, travelling as one value."""

    model: str | None = None  # hub id, folder or .gguf path; None: the embedded default
    revision: str | None = None
    gguf_file: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False


@dataclasses.dataclass
class LoadedModel:
    """A model ready to run, with what it was loaded from and how."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: ModelSource
    device: str  # where the inputs go: 'cpu', 'cuda:0', 'mps'
    dtype: str  # 'float32', ...
    spec: LoadSpec | None = dataclasses.field(default=None, repr=False)  # what was asked for

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def masked(self) -> bool:
        return is_masked_lm(self.model.config)

    def require_causal(self, task: str, hint: str) -> LoadedModel:
        """This model, if it reads left to right; a masked LM (BERT) is a usage error for TASK."""
        if self.masked:
            raise UsageError(
                f"{self.source.display_name} is a masked language model (BERT-style): it fills in [MASK], "
                f"it does not {task}",
                hint=hint,
            )
        return self


ModelLike = Union[str, os.PathLike, LoadSpec, LoadedModel, None]
_OPTIONS = tuple(f.name for f in dataclasses.fields(LoadSpec) if f.name != "model")


# --------------------------------------------------------------------------------------------
# The model forms


def load_spec(model: ModelLike = None, **overrides: Any) -> LoadSpec:
    """MODEL as a LoadSpec, with ``overrides`` (revision=, gguf_file=, device=, dtype=, trust_remote_code=).

    An override that is None or the option's default leaves the value alone, so a function's default
    ``device="auto"`` never undoes a LoadSpec's ``device="cpu"``. A LoadedModel gives the spec it was
    loaded with (its overrides are ignored: it is not loaded again).
    """
    unknown = sorted(set(overrides) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unexpected model option(s): {', '.join(unknown)}")
    if isinstance(model, LoadedModel):
        return model.spec or _spec_of_loaded(model)
    if isinstance(model, LoadSpec):
        base = model
    elif model is None or isinstance(model, str):
        base = LoadSpec(model=model)
    elif isinstance(model, os.PathLike):
        base = LoadSpec(model=os.fsdecode(os.fspath(model)))
    else:
        raise UsageError(
            f"model= takes a hub id, a path, a LoadSpec or a LoadedModel, not {type(model).__name__}"
        )
    defaults = LoadSpec()
    changes = {k: v for k, v in overrides.items() if v is not None and v != getattr(defaults, k)}
    return dataclasses.replace(base, **changes) if changes else base


def _spec_of_loaded(lm: LoadedModel) -> LoadSpec:
    """The spec that loads what ``lm`` holds (for a LoadedModel built by hand)."""
    source = lm.source
    if source.kind == "embedded":
        model = None
    elif source.kind == "gguf":
        model = str(source.gguf_path)
    else:
        model = source.location
    gguf_file = source.gguf_file if source.kind == "hub" else None
    return LoadSpec(model=model, revision=source.revision, gguf_file=gguf_file, device=lm.device, dtype=lm.dtype)


def source_of(model: ModelLike = None, **overrides: Any) -> ModelSource:
    """Where MODEL comes from, without loading anything (for users of the config only).

    A LoadedModel gives its ``.source``; anything else is resolved (see ``llmscope.loading.resolve``).
    """
    if isinstance(model, LoadedModel):
        return model.source
    from llmscope.loading.resolve import resolve

    spec = load_spec(model, **overrides)
    return resolve(spec.model, revision=spec.revision, gguf_file=spec.gguf_file)


def load(
    model: ModelLike = None,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Resolve and load MODEL in one call; a LoadedModel passes through unchanged.

    This is what every core function calls, so a notebook can load once and reuse:
    ``lm = llmscope.load("gpt2"); llmscope.predict_next_token("Hello", model=lm)``. While it loads,
    ``reporter().status`` says so (the CLI draws a spinner; the silent default reporter shows nothing).
    """
    if isinstance(model, LoadedModel):
        return model
    spec = load_spec(
        model, revision=revision, gguf_file=gguf_file, device=device, dtype=dtype, trust_remote_code=trust_remote_code
    )
    with reporter().status("Loading the model"):
        lm = load_model(
            source_of(spec),
            device=spec.device,
            dtype=spec.dtype,
            trust_remote_code=spec.trust_remote_code,
            attn_implementation=attn_implementation,
        )
    lm.spec = spec
    return lm


# --------------------------------------------------------------------------------------------
# Config and tokenizer


def _pretrained_location(source: ModelSource, stage: str) -> tuple[str, dict[str, Any]]:
    """Where from_pretrained should read ``stage`` from, and the keyword arguments that go with it."""
    if source.kind in ("gguf", "embedded"):
        gguf = gguf_file_for(source)
        if stage != "config":
            check_gguf_header(source)
        return str(ensure_gguf_stage(gguf, stage, source)), {}
    if source.kind == "hub":
        kwargs: dict[str, Any] = {"revision": source.revision} if source.revision else {}
        if source.gguf_file:
            kwargs["gguf_file"] = source.gguf_file
        if not hub_reachable():
            kwargs["local_files_only"] = True
        return source.location, kwargs
    return source.location, {}


def check_gguf_header(source: ModelSource) -> None:
    """A GGUF source's header read and checked first (its config stage: ``gguf_header.py``), so that no
    slower reader (the tokenizer's conversion: a Python object per metadata element) walks a header
    that lies about its lengths or holds millions of elements. Cached like every stage."""
    if source.kind in ("gguf", "embedded"):
        ensure_gguf_stage(gguf_file_for(source), "config", source)


def load_config(source: ModelSource, *, trust_remote_code: bool = False) -> PretrainedConfig:
    """The model's config: config.json only, no weights.

    An older config.json without ``model_type`` gets it from its ``architectures`` (with a notice).
    """
    location, kwargs = _pretrained_location(source, "config")
    with translate_errors(source, what="config"):
        quiet_transformers()
        from transformers import AutoConfig, PretrainedConfig

        if source.kind in ("folder", "hub") and "gguf_file" not in kwargs:
            # Before the config class: some build per-layer lists in __init__ (2**32-1 layers: gigabytes)
            _check_layer_count(PretrainedConfig.get_config_dict(location, **kwargs)[0], source)
        try:
            config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)
        except ValueError as exc:
            if "model_type" not in str(exc):
                raise
            config = _config_without_model_type(source, location, kwargs)
    from llmscope.config.values import text_config

    _check_layer_count({"num_hidden_layers": getattr(text_config(config), "num_hidden_layers", None)}, source)
    return config


def _check_layer_count(values: dict[str, Any], source: ModelSource) -> None:
    """Refuse a config declaring more layers than llmscope reads in bounded work (``MAX_LAYERS``)."""
    from llmscope.config.values import MAX_LAYERS, too_many_layers

    found = too_many_layers(values)
    if found:
        where = "its GGUF metadata says" if source.kind in ("gguf", "embedded") else "config.json says"
        raise ModelFormatError(f"{source.display_name}: {where} {found[0]} {found[1]:,}; llmscope reads models of "
                               f"at most {MAX_LAYERS:,} layers", hint="fix the layer count")


def _check_sizes(config: PretrainedConfig, source: ModelSource) -> None:
    """Sizes no model can be built with (``vocab_size: 0``), refused before torch builds empty tensors."""
    from llmscope.config.values import text_config

    text = text_config(config)
    for key in ("vocab_size", "hidden_size", "num_hidden_layers"):
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ModelFormatError(f"{source.display_name}: config.json says {key} {value}; a model needs at least 1",
                                   hint="fix config.json")


def _config_without_model_type(source: ModelSource, location: str, kwargs: dict[str, Any]) -> PretrainedConfig:
    """Read a config.json that has no ``model_type``, taking it from ``architectures``."""
    from transformers import CONFIG_MAPPING, PretrainedConfig

    config_dict, _ = PretrainedConfig.get_config_dict(location, **kwargs)
    architectures = config_dict.get("architectures") or []
    model_type = infer_model_type(architectures)
    if model_type is None:
        why = (
            f"its architectures ({', '.join(architectures)}) are no model transformers knows"
            if architectures
            else "no architectures to infer it from"
        )
        raise ModelFormatError(
            f"{source.display_name}: config.json has no model_type, and {why}",
            hint='add the "model_type" key to config.json (for example "llama" or "gpt2")',
        )
    reporter().notice(
        f"config.json has no model_type; inferred {model_type!r} from architectures {', '.join(architectures)}"
    )
    return CONFIG_MAPPING[model_type].from_pretrained(location, **kwargs)


def load_tokenizer(source: ModelSource, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The model's tokenizer, without its weights."""
    location, kwargs = _pretrained_location(source, "tokenizer")
    with translate_errors(source, what="tokenizer"):
        quiet_transformers()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)


# --------------------------------------------------------------------------------------------
# The model


def load_model(
    source: ModelSource,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    tokenizer: bool = True,
) -> LoadedModel:
    """Load weights and tokenizer for running. ``device='auto'`` uses accelerate's device map.

    ``tokenizer=False`` loads the weights alone (the tokenizer is then None): ``memory --measure``
    counts what the weights take.

    The tokenizer loads in a second thread while the weights load: for a 262k-token vocabulary its
    tokenizer.json takes as long to parse as a small model's weights take to read.
    """
    import copy
    from concurrent.futures import ThreadPoolExecutor

    target = resolve_device(device)
    config = load_config(source, trust_remote_code=trust_remote_code)
    _check_sizes(config, source)
    if source.kind == "folder" and not has_weights_file(source.location):  # before transformers' own error
        raise missing_weights(source)
    pristine = copy.deepcopy(config)  # for from_pretrained, untouched by the meta build
    torch_dtype = resolve_dtype(dtype, target, config)
    cls = model_class(config, trust_remote_code=trust_remote_code)
    with translate_errors(source, what="config"):
        meta = build_meta_model(config, trust_remote_code=trust_remote_code)
    weight_bytes = sum(p.numel() for p in meta.parameters()) * torch_dtype.itemsize  # tied: once
    check_weights_fit(weight_bytes, target, str(torch_dtype).replace("torch.", ""), source.display_name)
    # Convert what a GGUF still needs first, one stage at a time; then read both folders at once.
    if tokenizer:
        _pretrained_location(source, "tokenizer")
    location, kwargs = _pretrained_location(source, "model")
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    device_map: Any = "auto" if target == "auto" else {"": target}
    with ThreadPoolExecutor(max_workers=1) as pool:
        tokenizer_job = pool.submit(load_tokenizer, source, trust_remote_code=trust_remote_code) if tokenizer else None
        with translate_errors(source, what="weights"):
            quiet_transformers()
            model = cls.from_pretrained(
                location,
                config=pristine,  # also a config.json without model_type
                dtype=torch_dtype,
                device_map=device_map,
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
        loaded_tokenizer = tokenizer_job.result() if tokenizer_job else None
    model.eval()
    input_device = str(next(model.parameters()).device) if target == "auto" else target
    return LoadedModel(
        model=model,
        tokenizer=loaded_tokenizer,
        source=source,
        device=input_device,
        dtype=str(torch_dtype).replace("torch.", ""),
    )

