"""Hooks that read (``capture``) or rewrite (``replace``) a model part's input or output, and always come off.

The sites are modules, usually found through the anatomy map (``forward/anatomy.py``). A site's hidden state
is the tensor itself, or the first element of the tuple (or ModelOutput) a decoder layer returns; the whole
value stays available. Hooks are removed on leaving the ``with`` block: normally, on an error, on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def hidden_of(value: Any) -> Any:
    """The hidden state in a module's input or output: the tensor itself, or the first element of a
    tuple (decoder layers return one in some models) or of a ModelOutput."""
    if isinstance(value, (tuple, list)):
        return value[0] if value else None
    return value.to_tuple()[0] if hasattr(value, "to_tuple") else value


def _with_hidden(value: Any, new: Any) -> Any:
    """VALUE with its hidden state replaced by NEW (the rest of a tuple or ModelOutput kept)."""
    if isinstance(value, (tuple, list)):
        return type(value)([new, *value[1:]])
    if hasattr(value, "to_tuple"):
        value[next(iter(value.keys()))] = new
        return value
    return new


@dataclasses.dataclass(frozen=True)
class Captured:
    """What ``capture`` saw, every call in order, per site (its index in a sequence, its key in a
    mapping, 0 for a lone module): ``store[key]`` the last hidden state, ``store.value`` the lone
    site's, ``store.hidden[key]`` all of them, ``store.raw[key]`` the whole inputs / outputs."""

    hidden: dict[Any, list[Any]]
    raw: dict[Any, list[Any]]

    def __getitem__(self, key: Any) -> Any:
        if not self.hidden[key]:
            raise KeyError(f"site {key!r} did not run")
        return self.hidden[key][-1]

    @property
    def value(self) -> Any:
        return self[0]


What = Literal["input", "output"]


def _sites(sites: Any) -> list[tuple[Any, nn.Module]]:
    """(key, module) for a module, a sequence of modules or a mapping of keys to modules."""
    if isinstance(sites, Mapping):
        return list(sites.items())
    return list(enumerate(sites)) if isinstance(sites, Sequence) else [(0, sites)]


@contextlib.contextmanager
def _hooks(sites: Any, what: What, on: Callable[[Any, Any, Any], Any], *, first: bool = False) -> Iterator[None]:
    """Call ``on(key, hidden, raw)`` at each site's input (a forward pre-hook) or output; a value it
    returns replaces the hidden state. ``first``: before the site's other hooks. Every hook is
    removed when the block ends, however it ends (normally, by an exception, by KeyboardInterrupt)."""
    handles: list[Any] = []

    def hook_for(key: Any) -> Callable[..., Any]:
        def before(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            # the hidden state: the first argument, else the hidden_states keyword, else the first tensor keyword
            tensors = (k for k in ("hidden_states", *kwargs) if hasattr(kwargs.get(k), "shape"))
            where = 0 if args else next(tensors, None)
            if where is None:
                return None
            new = on(key, args[0] if where == 0 else kwargs[where], (args, kwargs))
            if new is None:
                return None
            return ((new, *args[1:]), kwargs) if where == 0 else (args, {**kwargs, where: new})

        def after(_module: Any, _args: Any, output: Any) -> Any:
            new = on(key, hidden_of(output), output)
            return None if new is None else _with_hidden(output, new)

        return before if what == "input" else after

    try:
        for key, module in _sites(sites):
            hook = hook_for(key)
            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True, prepend=first) if what == "input"
                           else module.register_forward_hook(hook, prepend=first))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def watch(sites: Any, on: Callable[[Any, Any, Any], None], what: What = "output") -> Iterator[None]:
    """Call ``on(key, hidden, raw)`` at each call of SITES during the block, keeping nothing itself: for a
    view that reduces each layer's output as it comes (attention weights), so memory stays one layer's."""
    def look(key: Any, hidden: Any, raw: Any) -> None:
        on(key, hidden, raw)  # what it returns is ignored: watching never changes the forward pass

    with _hooks(sites, what, look):
        yield


@contextlib.contextmanager
def capture(sites: Any, what: What = "output", *, clone: bool = True) -> Iterator[Captured]:
    """Keep the input or output of SITES (a module, a sequence or a mapping of them) during the
    block: ``with capture(module) as store: model(ids)``, then ``store.value``. ``clone`` (default)
    copies the hidden state, so an in-place change later in the forward pass cannot alter it."""
    keys = [key for key, _ in _sites(sites)]
    store = Captured(hidden={k: [] for k in keys}, raw={k: [] for k in keys})

    def keep(key: Any, hidden: Any, raw: Any) -> None:
        store.hidden[key].append(hidden.detach().clone() if clone and hasattr(hidden, "clone") else hidden)
        store.raw[key].append(raw)

    with _hooks(sites, what, keep):
        yield store


@contextlib.contextmanager
def capture_last(sites: Any, what: What = "output") -> Iterator[Captured]:
    """``capture`` keeping only the last position of each call's hidden state (batch 0), in float64: one vector
    a site, however long the prompt (``raw`` stays empty)."""
    keys = [key for key, _ in _sites(sites)]
    store = Captured(hidden={k: [] for k in keys}, raw={k: [] for k in keys})

    def keep(key: Any, hidden: Any, _raw: Any) -> None:
        store.hidden[key].append(hidden[0, -1].detach().double().clone())

    with _hooks(sites, what, keep):
        yield store


@contextlib.contextmanager
def replace(sites: Any, fn: Callable[[Any], Any], what: What = "output") -> Iterator[None]:
    """Replace the hidden state SITES output (or take as input) by ``fn(hidden)`` during the block;
    the rest of a tuple output is kept. It runs before the site's other hooks, so transformers' own
    recorders (``output_hidden_states``) and any ``capture`` see the replaced value."""
    with _hooks(sites, what, lambda _key, hidden, _raw: fn(hidden), first=True):
        yield
