"""Rich rendering of a PackingResult (``llmscope pack``): the two strategies and how sequences fill."""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from llmscope.text.packing import PackingResult
from llmscope.render import visible
from llmscope.units import fmt_int

PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
SEQUENCES_SHOWN = 6
PAD, SEP = -1, -2

Segment = tuple[int, int]  # (document index, or PAD / SEP; tokens)


def padded_layout(lengths: list[int], seq_len: int, limit: int) -> list[list[Segment]]:
    """The first ``limit`` sequences when every document (chunk) is padded to seq_len."""
    rows: list[list[Segment]] = []
    for doc, n in enumerate(lengths):
        while n > 0 and len(rows) < limit:
            take = min(n, seq_len)
            rows.append([(doc, take)] + ([(PAD, seq_len - take)] if take < seq_len else []))
            n -= take
        if len(rows) >= limit:
            break
    return rows


def packed_layout(lengths: list[int], seq_len: int, separator_len: int, limit: int) -> list[list[Segment]]:
    """The first ``limit`` sequences when documents and separators are packed back-to-back."""
    rows: list[list[Segment]] = [[]]
    room = seq_len

    def put(kind: int, n: int) -> None:
        nonlocal room
        while n > 0:
            if room == 0:
                rows.append([])
                room = seq_len
            take = min(n, room)
            rows[-1].append((kind, take))
            room -= take
            n -= take

    for doc, n in enumerate(lengths):
        if len(rows) > limit:
            break
        put(doc, n)
        put(SEP, separator_len)
    rows = rows[:limit]
    if room and len(rows[-1]) and sum(n for _, n in rows[-1]) < seq_len:
        rows[-1].append((PAD, seq_len - sum(n for _, n in rows[-1])))
    return rows


def _bar(row: list[Segment], seq_len: int, width: int) -> Text:
    """One sequence as ``width`` characters; each character shows what fills the middle of its slice."""
    text = Text(no_wrap=True)
    bounds = []
    start = 0
    for kind, n in row:
        bounds.append((start, start + n, kind))
        start += n
    for c in range(width):
        middle = (c + 0.5) * seq_len / width
        kind = next((k for a, b, k in bounds if a <= middle < b), PAD)
        if kind == PAD:
            text.append("░", style="dim")
        elif kind == SEP:
            text.append("│", style="bold")
        else:
            text.append("█", style=PALETTE[kind % len(PALETTE)])
    return text


class Picture:
    def __init__(self, r: PackingResult) -> None:
        self.r = r

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        r = self.r
        width = max(10, min(64, options.max_width - 14))
        if r.seq_len <= width:  # whole characters per token
            width = r.seq_len * (width // r.seq_len)
        for name, rows, total in (
            ("padded", padded_layout(r.lengths, r.seq_len, SEQUENCES_SHOWN), r.padded.sequences),
            ("packed", packed_layout(r.lengths, r.seq_len, len(r.separator_ids), SEQUENCES_SHOWN), r.packed.sequences),
        ):
            yield Text(f"{name}: first {len(rows)} of {fmt_int(total)} sequences", style="bold")
            for i, row in enumerate(rows):
                line = Text(f"  {i:>4}  ", style="dim", no_wrap=True)
                line.append_text(_bar(row, r.seq_len, width))
                yield line
        yield Text(
            f"  █ a document (a colour each)  │ {visible(r.separator)}  ░ padding  "
            + (f"(1 token = {width // r.seq_len} characters)" if r.seq_len <= width else
               f"(1 character ≈ {r.seq_len / width:.3g} tokens)"),
            style="dim",
        )


def render_packing(r: PackingResult) -> RenderableType:
    title = Text(overflow="fold")
    title.append(
        f"Packing {fmt_int(r.documents)} documents into sequences of {fmt_int(r.seq_len)} tokens", style="bold"
    )
    title.append(f"\n  {r.model}", style="dim")
    facts = Text(
        f"  {fmt_int(r.tokens)} tokens; documents {fmt_int(r.shortest)} to {fmt_int(r.longest)} tokens, "
        f"mean {r.mean:,.1f}",
        style="dim",
    )
    notes = [title, facts]
    if r.empty_documents:
        notes.append(Text(f"  {fmt_int(r.empty_documents)} empty documents skipped", style="dim"))
    if r.long_documents:
        one = r.long_documents == 1
        notes.append(
            Text(
                f"  {fmt_int(r.long_documents)} document{' is' if one else 's are'} longer than {fmt_int(r.seq_len)} "
                f"tokens: padding splits {'it' if one else 'them'} into {fmt_int(r.chunks)} chunks (nothing is "
                f"truncated); packing lets {'it' if one else 'them'} span sequences",
                style="yellow",
            )
        )
    t = Table(box=box.SIMPLE_HEAD)
    t.add_column("")
    t.add_column("padded", justify="right")
    t.add_column("packed", justify="right")
    p, q = r.padded, r.packed
    t.add_row("sequences", fmt_int(p.sequences), fmt_int(q.sequences))
    t.add_row("document tokens", fmt_int(p.document_tokens), fmt_int(q.document_tokens))
    t.add_row(f"separator tokens ({visible(r.separator)})", fmt_int(p.separator_tokens), fmt_int(q.separator_tokens))
    t.add_row("padding tokens", fmt_int(p.padding_tokens), fmt_int(q.padding_tokens))
    t.add_row(
        Text("utilisation", style="bold"),
        Text(f"{100 * p.utilisation:.1f}%", style="bold"),
        Text(f"{100 * q.utilisation:.1f}%", style="bold green"),
    )
    saved = r.saved_sequences
    verdict = Text(
        f"Packing needs {fmt_int(q.sequences)} sequences instead of {fmt_int(p.sequences)}"
        + (f": {100 * saved / p.sequences:.1f}% fewer." if p.sequences and saved > 0 else "."),
    )
    return Group(*notes, t, verdict, Text(""), Picture(r))
