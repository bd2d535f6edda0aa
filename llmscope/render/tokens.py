"""Rich rendering of tokenizations (``llmscope tokenize``): coloured boundaries, token tables, vocab."""

from __future__ import annotations

import re
from pathlib import PurePath

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from llmscope.render import fmt_int
from llmscope.text.tokens import DecodeResult, TokenInfo, TokenizationResult, TokenizerComparison
from llmscope.text.vocab import VocabInfo

# Alternating backgrounds, as in tokenizer playgrounds; readable with light or dark text.
PALETTE = ("on #1f4e79", "on #5b3a6e", "on #2e6b4f", "on #7a5a1e", "on #6e2f3f", "on #245f6b")
SPECIAL_STYLE = "bold white on #b03030"
PARTIAL_STYLE = "yellow"
MAX_ROWS = 1000  # table rows shown; --json has them all


def show(text: str) -> str:
    """A string safe on one table line: whitespace visible (· ↵ →), other control characters escaped."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("·")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("→")
        elif ch == "\r":
            out.append("␍")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _flow(text: str) -> str:
    """Whitespace visible in running text, but newlines still break the line."""
    return show(text.replace("\r\n", "\n")).replace("↵", "↵\n")


# --------------------------------------------------------------------------------------------
# The text with token boundaries


def _groups(result: TokenizationResult) -> list[tuple[str, list[TokenInfo]]]:
    """Tokens in display groups: ('span', tokens sharing overlapping character spans), ('marker',
    [token]) for tokens with no characters of their own (added special tokens, empty spans)."""
    groups: list[tuple[str, list[TokenInfo]]] = []
    end = -1
    for t in result.tokens:
        if t.added or t.start is None or t.end is None or t.end <= t.start:
            groups.append(("marker", [t]))
            continue
        if groups and groups[-1][0] == "span" and t.start < end:
            groups[-1][1].append(t)
            end = max(end, t.end)
        else:
            groups.append(("span", [t]))
            end = t.end
    return groups


def boundaries(result: TokenizationResult) -> Text:
    """The text, each token (or set of byte tokens sharing characters) on its own background."""
    out = Text()
    if not result.has_offsets:  # slow tokenizer: the pieces themselves, one after another
        for i, t in enumerate(result.tokens):
            style = SPECIAL_STYLE if t.special else PALETTE[i % len(PALETTE)]
            out.append(_flow(t.piece), style=style)
        return out
    cursor = 0
    colour = 0
    for kind, tokens in _groups(result):
        if kind == "marker":
            t = tokens[0]
            out.append(show(t.piece) if not t.special else t.token, style=SPECIAL_STYLE if t.special else "italic")
            continue
        start, end = tokens[0].start or 0, max(t.end or 0 for t in tokens)
        if start > cursor:  # characters no token covers (e.g. spaces a pre-tokenizer drops)
            out.append(_flow(result.text[cursor:start]), style="dim")
        start = max(start, cursor)
        if any(t.special for t in tokens):
            style = SPECIAL_STYLE
        else:
            style = PALETTE[colour % len(PALETTE)]
            colour += 1
        if len(tokens) > 1:
            style += " underline"  # several tokens share these characters (byte pieces)
        out.append(_flow(result.text[start:end]), style=style)
        cursor = max(cursor, end)
    if cursor < len(result.text):
        out.append(_flow(result.text[cursor:]), style="dim")
    return out


# --------------------------------------------------------------------------------------------
# Tables


def _token_table(tokens: tuple[TokenInfo, ...], *, offsets: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("id", justify="right", style="cyan", no_wrap=True)
    table.add_column("token", no_wrap=False, overflow="fold")
    table.add_column("piece", no_wrap=False, overflow="fold")
    if offsets:
        table.add_column("chars", justify="right", style="dim", no_wrap=True)
    for t in tokens[:MAX_ROWS]:
        token_style = SPECIAL_STYLE if t.special else ""
        piece = Text(show(t.piece), style=PARTIAL_STYLE if t.partial else ("bold" if t.special else ""))
        if t.added:
            piece.append("  added", style="dim italic")
        row = [str(t.position), str(t.id), Text(show(t.token), style=token_style), piece]
        if offsets:
            row.append("-" if t.start is None else f"{t.start}–{t.end}")
        table.add_row(*row)
    if len(tokens) > MAX_ROWS:
        table.caption = f"first {MAX_ROWS:,} of {len(tokens):,} tokens (--json lists all)"
    return table


def _plural(n: int, word: str) -> str:
    return f"{fmt_int(n)} {word}{'' if n == 1 else 's'}"


def _totals(result: TokenizationResult) -> Text:
    """Tokens, characters and characters per token. Characters per token counts the tokens cut from
    the text, not the special tokens the tokenizer added: where there are any, the division is shown."""
    added = len(result.added_special_tokens)
    cpt = result.characters_per_token
    line = Text()
    line.append(_plural(result.num_tokens, "token"), style="bold")
    if added:
        line.append(f" ({result.num_tokens - added:,} from the text + {added:,} added)", style="dim")
    line.append(" · ")
    line.append(_plural(result.num_characters, "character"), style="bold")
    if added and cpt is not None:
        line.append(f" / {result.num_tokens - added:,} = ")
        line.append(f"{cpt:.2f}", style="bold")
        line.append(" per text token")
    else:
        line.append(" · ")
        line.append("-" if cpt is None else f"{cpt:.2f}", style="bold")
        line.append(" characters per token")
    return line


def _added(result: TokenizationResult) -> RenderableType | None:
    if result.chat:
        return Text("No special tokens added: the chat template writes its own.", style="dim")
    if not result.add_special_tokens:
        return Text("Special tokens not added (--no-add-special-tokens).", style="dim")
    if not result.added_special_tokens:
        return Text("The tokenizer adds no special tokens to this text.", style="dim")
    lines = Text()
    for i, a in enumerate(result.added_special_tokens):
        if i:
            lines.append("\n")
        lines.append(a.token, style=SPECIAL_STYLE)
        lines.append(f" (id {a.id}, position {a.position}{', ' + a.role if a.role else ''}): ", style="dim")
        lines.append(a.reason)
    return lines


def _legend() -> Text:
    legend = Text("  ", style="dim")
    legend.append("·", style="bold")
    legend.append(" space  ", style="dim")
    legend.append("↵", style="bold")
    legend.append(" newline  ", style="dim")
    legend.append("→", style="bold")
    legend.append(" tab  ", style="dim")
    legend.append("special", style=SPECIAL_STYLE)
    legend.append("  ", style="dim")
    legend.append("underlined", style="underline")
    legend.append(": several byte tokens", style="dim")
    return legend


def render_tokenization(result: TokenizationResult) -> RenderableType:
    title = f"[bold]{result.model}[/bold]" + (" · chat template" if result.chat else "")
    text = boundaries(result) if result.tokens or result.text else Text("(empty text)", style="dim")
    parts: list[RenderableType] = [
        Panel(text, title=title, title_align="left", box=box.ROUNDED, subtitle=_legend(), subtitle_align="left"),
    ]
    if result.tokens:
        parts.append(_token_table(result.tokens, offsets=result.has_offsets))
    parts.append(_totals(result))
    added = _added(result)
    if added is not None:
        parts.append(added)
    return Group(*parts)


def render_decode(result: DecodeResult) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("id", justify="right", style="cyan", no_wrap=True)
    table.add_column("token", overflow="fold")
    table.add_column("piece", overflow="fold")
    for t in result.tokens[:MAX_ROWS]:
        table.add_row(
            str(t.position),
            str(t.id),
            Text(show(t.token), style=SPECIAL_STYLE if t.special else ""),
            Text(show(t.piece), style=PARTIAL_STYLE if t.partial else ""),
        )
    decoded = Text(result.text) if result.text else Text("(empty)", style="dim")
    return Group(
        Text.assemble((result.model, "bold"), (f" · {len(result.ids):,} ids", "dim")),
        table,
        Panel(decoded, title="tokenizer.decode(ids)", title_align="left", box=box.ROUNDED),
    )


SHORT_CATEGORY = {"letters": "letters", "digits": "digits", "whitespace": "space", "punctuation": "punct",
                  "CJK": "CJK", "emoji": "emoji", "other": "other", "special": "special"}


def short_name(model: str) -> str:
    """A model's name for a narrow column: a local path's last part, the embedded model's short name."""
    if model.startswith(("/", "~", ".")):
        return PurePath(model).name or model
    return model.split(" (")[0] if " (embedded" in model else model


def render_comparison(result: TokenizerComparison) -> RenderableType:
    summary = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    summary.add_column("model", overflow="fold", max_width=40)
    summary.add_column("tokens", justify="right", style="bold")
    summary.add_column("vs first", justify="right")
    summary.add_column("chars/text token", justify="right")  # added special tokens not counted
    kinds = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, collapse_padding=True,
                  title="tokens by the kind of character they start with", title_justify="left", title_style="dim")
    kinds.add_column("model", overflow="fold", max_width=20)
    for kind in result.categories:
        kinds.add_column(SHORT_CATEGORY.get(kind, kind), justify="right")
    base = result.results[0].num_tokens if result.results else 0
    for r, counts in zip(result.results, result.tokens_by_category):
        cpt = r.characters_per_token
        summary.add_row(
            short_name(r.model),
            fmt_int(r.num_tokens),
            f"×{r.num_tokens / base:.2f}" if base else "-",
            "-" if cpt is None else f"{cpt:.2f}",
        )
        kinds.add_row(short_name(r.model), *(fmt_int(counts.get(k, 0)) for k in result.categories))
    parts: list[RenderableType] = [
        Text(f"{len(result.text):,} characters through {len(result.results)} tokenizers", style="bold"),
        summary,
        kinds,
    ]
    for r in result.results:
        parts.append(
            Panel(
                boundaries(r) if r.tokens else Text("(no tokens)", style="dim"),
                title=f"[bold]{short_name(r.model)}[/bold] · {r.num_tokens:,} tokens",
                title_align="left",
                box=box.ROUNDED,
            )
        )
    return Group(*parts)


def _fold_specials(info: VocabInfo) -> list[tuple[list, list[str], str | None]]:
    """Special tokens with runs of look-alikes at consecutive ids (<unused0> ... <unused98>) folded."""
    rows: list[tuple[list, list[str], str | None]] = []
    previous_shape = None
    for s in info.special_tokens:
        shape = re.sub(r"\d+", "N", s.token)
        if (
            rows and s.role is None and rows[-1][2] is None and shape == previous_shape and s.id is not None
            and rows[-1][0][-1] is not None and s.id == rows[-1][0][-1] + 1 and shape != s.token
        ):
            rows[-1][0].append(s.id)
            rows[-1][1].append(s.token)
        else:
            rows.append(([s.id], [s.token], s.role))
        previous_shape = shape
    return rows


def render_vocab(info: VocabInfo) -> RenderableType:
    t = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False, expand=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(overflow="fold")
    kind = info.model_type or "unknown (no tokenizer.json)"
    if info.byte_level:
        kind += ", byte-level (every byte is a symbol: no unknown tokens)"
    elif info.byte_fallback:
        kind += ", byte fallback (unknown characters become <0xNN> byte tokens)"
    else:
        kind += ", not byte-level"
    t.add_row("tokenizer", f"{info.tokenizer_class}{' (fast)' if info.is_fast else ' (slow)'}")
    t.add_row("type", kind)
    added = info.total_size - info.vocab_size
    size = fmt_int(info.vocab_size) + (f" + {fmt_int(added)} added = {fmt_int(info.total_size)}" if added > 0 else "")
    t.add_row("vocab_size", size)
    t.add_row("normalizer", info.normalizer or "none")
    t.add_row("pre-tokenizer", info.pre_tokenizer or "none")
    t.add_row("post-processor", info.post_processor or "none")
    t.add_row("decoder", info.decoder or "none")
    adds = [name for name, on in (("BOS", info.adds_bos), ("EOS", info.adds_eos)) if on]
    t.add_row("adds", " and ".join(adds) + " to every text" if adds else "no BOS/EOS")
    t.add_row("model_max_length", fmt_int(info.model_max_length) if info.model_max_length else "not set")
    t.add_row("chat template", "yes" if info.has_chat_template else "no")

    specials = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, title="special tokens", title_justify="left")
    specials.add_column("id", justify="right", style="cyan")
    specials.add_column("token", overflow="fold")
    specials.add_column("role", style="dim")
    for ids, tokens, role in _fold_specials(info):
        if len(tokens) == 1:
            specials.add_row("-" if ids[0] is None else str(ids[0]), Text(show(tokens[0]), style=SPECIAL_STYLE),
                             role or "")
        else:
            label = Text(show(tokens[0]), style=SPECIAL_STYLE)
            label.append(" … ")
            label.append(show(tokens[-1]), style=SPECIAL_STYLE)
            label.append(f"  ({len(tokens):,} tokens)", style="dim")
            specials.add_row(f"{ids[0]}–{ids[-1]}", label, role or "")
    return Group(Text(info.model, style="bold"), t, specials)
