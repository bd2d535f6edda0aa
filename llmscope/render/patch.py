"""Rich rendering of a PatchResult (``llmscope patch``): the layer x position (or layer x head) grid on the
diverging scale, the strongest cells, the metric's two ends and the identity checks."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmscope.explain.patch import PatchResult
from llmscope.render import visible
from llmscope.render.why import _style


def grid_table(r: PatchResult) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_header=True, title_justify="left", title_style="bold",
              title=f"Restored share of the answer, patching {r.site} (0: corrupt, 1: clean)")
    t.add_column("layer", justify="right", style="dim", no_wrap=True)
    labels = [f"H{h}" for h in range(len(r.grid[0]))] if r.site == "heads" else [visible(x)[:7] for x in r.tokens]
    for label in labels:
        t.add_column(label, justify="right", no_wrap=True, max_width=7)
    for layer, row in enumerate(r.grid):
        t.add_row(str(layer), *[Text("--", style="dim") if v is None else Text(f"{v:+.2f}", style=_style(v))
                                for v in row])
    return t


def render_patch(r: PatchResult, top: int = 8) -> RenderableType:
    head = Text()
    metric = (f"logit({r.target!r}) - logit({r.versus!r})" if r.metric == "logit_diff"
              else f"log p({r.target!r})")
    head.append(f"Which activations restore {metric}?", style="bold")
    against = f"corrupt: {r.corrupt_prompt!r}" if r.corrupt_prompt is not None else (
        f"corrupt: the clean prompt with noise on {r.noise!r} (seed {r.seed})")
    head.append(f"\n  clean: {r.clean_prompt!r}; {against}\n  {r.model}, {r.dtype}\n", style="dim")
    head.append(f"metric: clean {r.clean:+.4f}, corrupt {r.corrupt:+.4f}", style="dim")
    cells = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Strongest {top} cells", title_justify="left",
                  title_style="bold")
    for name, justify in (("layer", "right"), ("head" if r.site == "heads" else "position", "right"),
                          ("" if r.site == "heads" else "token", "left"), ("restored", "right")):
        cells.add_column(name, justify=justify)
    for layer, j, v in r.strongest(top):
        cells.add_row(str(layer), str(j), "" if r.site == "heads" else visible(r.tokens[j]), f"{v:+.3f}")
    check = Text(f"check: every position of a layer's residual input patched gives the clean metric within "
                 f"{r.check['all']:.1e}; nothing patched gives the corrupt one within {r.check['none']:.1e}",
                 style="dim" if max(r.check.values()) < 1e-4 else "bold red")
    return Group(head, grid_table(r), cells, check)
