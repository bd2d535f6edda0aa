"""Each module's input and output shape for a prompt of N tokens, from the config alone.

The model is built and run under torch's ``FakeTensorMode``: every tensor has its shape and dtype but no
storage and no values, so a 46.7B-parameter Mixtral runs in seconds and no memory, and transformers'
data-dependent checks (a packed-sequence test, a mask shortcut) see a fake tensor and step aside. A
mixture-of-experts block runs with transformers' ``batched_mm`` experts (every expert on every token,
shapes that do not depend on the routing), so its shapes are those of that computation.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig

Shape = tuple[int, ...]


def _shape_of(value: Any) -> Shape | None:
    """The hidden state's shape in a module's input or output: a tensor, or the first of a tuple / ModelOutput."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    elif hasattr(value, "to_tuple"):
        value = value.to_tuple()[0]
    shape = getattr(value, "shape", None)
    return tuple(int(n) for n in shape) if shape is not None else None


def module_shapes(config: PretrainedConfig, tokens: int, *, trust_remote_code: bool = False
                  ) -> tuple[dict[str, tuple[Shape | None, Shape | None]], str | None]:
    """module name -> (input shape, output shape) for one sequence of TOKENS, and why there are none (or None)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from llmscope.loading.meta import model_class

    cls = model_class(config, trust_remote_code=trust_remote_code)
    shapes: dict[str, list[Shape | None]] = {}
    handles: list[Any] = []
    quiet = logging.getLogger("torch._subclasses.fake_tensor")  # it logs a failed op before raising it
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), torch.no_grad(), contextlib.ExitStack() as stack:
            extra = {"experts_implementation": "batched_mm"} if _has_experts(config) else {}
            model = cls.from_config(config, trust_remote_code=trust_remote_code, **extra) \
                if hasattr(cls, "from_config") else cls._from_config(config, **extra)
            model.eval()
            for name, module in model.named_modules():
                def before(_m: Any, args: tuple, kwargs: dict, name: str = name) -> None:
                    first = args[0] if args else next((v for v in kwargs.values() if hasattr(v, "shape")), None)
                    shapes.setdefault(name, [None, None])[0] = _shape_of(first)

                def after(_m: Any, _args: Any, output: Any, name: str = name) -> None:
                    shapes.setdefault(name, [None, None])[1] = _shape_of(output)

                handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
                handles.append(module.register_forward_hook(after))
            stack.callback(lambda: [h.remove() for h in handles])
            model(input_ids=torch.zeros((1, tokens), dtype=torch.long), use_cache=False)
    except Exception as exc:  # noqa: BLE001 - a model whose forward cannot run on fake tensors: say why
        return {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        quiet.setLevel(level)
    return {name: (pair[0], pair[1]) for name, pair in shapes.items()}, None


def _has_experts(config: PretrainedConfig) -> bool:
    from llmscope.config.values import text_config

    text = text_config(config)
    return any(getattr(text, key, None) for key in ("num_local_experts", "num_experts", "n_routed_experts"))
