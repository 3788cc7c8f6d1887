"""The leaderboard as one HTML page (``leaderboard.html``), with no external resources.

Nothing is fetched from elsewhere: the CSS and the few lines of vanilla JS are inline, the plots are the
PNG files beside the page (relative links, loaded lazily; ``embed_plots`` inlines them as data URIs for a
one-file page, about 4 MiB with 30 figures, which is why it is not the default: the page is committed
with the records), and every figure links to its record with a relative ``runs/<file>.json``, so the
folder works from a checkout, a zip or any static host. Click a column header to sort; the select boxes
and the text box filter rows (and, in matrices, victim columns) across every section.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from .fit import key_columns, layout, longest_token
from .markdown import cell_text
from .model import FILTER_KEYS, Cell, Section, fmt_ci_parts, is_numeric_cell, numeric_columns, page_title

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#fff;border-bottom:1px solid #d9dde3;padding:12px 24px;position:sticky;top:0;z-index:2}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:0 0 6px}
main{padding:8px 24px 40px}
.intro{margin:0;color:#4a5263;font-size:13px}
#filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-top:8px}
#filters label{font-size:13px;color:#4a5263}
#filters select,#filters input{font:inherit;padding:2px 4px;margin-left:4px}
#f-count{font-size:13px;color:#4a5263}
#f-jump{max-width:30em}
section{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:12px 14px;margin:14px 0;scroll-margin-top:120px}
.note{font-size:12px;color:#4a5263;margin:0 0 8px}
.rules{font-size:12.5px;margin:0 0 8px;padding:6px 8px;background:#f3f7ff;border-left:3px solid #1f5fbf;max-width:95em}
.badge{display:inline-block;font-size:11px;font-weight:600;background:#fff3cd;color:#7a5b00;border:1px solid #e6cf7a;
border-radius:3px;padding:0 5px;margin-left:8px;vertical-align:middle}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;font-variant-numeric:tabular-nums}
th,td{padding:3px 7px;border-bottom:1px solid #e7e9ee;text-align:left;white-space:nowrap;vertical-align:top}
th{background:#eef1f5;cursor:pointer;user-select:none;white-space:normal;vertical-align:bottom;min-width:3em;max-width:9em;
overflow-wrap:break-word}
td.wrap{white-space:normal;min-width:8em;max-width:22em;overflow-wrap:break-word}
td .ci{display:block;font-size:11px;color:#4a5263}
.part{font-size:12px;color:#4a5263;margin:8px 0 2px}
th.num{text-align:right}
th:hover{background:#e1e6ee}
th[data-dir=asc]::after{content:" \\25B2";font-size:9px}
th[data-dir=desc]::after{content:" \\25BC";font-size:9px}
tbody tr:hover{background:#f3f7ff}
td.num{text-align:right}
a{color:#1f5fbf;text-decoration:none}
a:hover{text-decoration:underline}
figure{margin:10px 0 0}
figure img{max-width:100%;border:1px solid #e7e9ee}
figcaption{font-size:12px;color:#4a5263}
[hidden]{display:none!important}
"""

_JS = """
(function () {
  var selects = Array.prototype.slice.call(document.querySelectorAll('#filters select[data-key]'));
  var text = document.getElementById('f-text'), count = document.getElementById('f-count');
  function apply() {
    var want = {}, q = text.value.trim().toLowerCase(), shown = 0;
    selects.forEach(function (s) { if (s.value) want[s.dataset.key] = s.value; });
    var filtering = q !== '' || Object.keys(want).length > 0;
    document.querySelectorAll('section.lb').forEach(function (sec) {
      var rows = sec.querySelectorAll('tbody tr'), visible = 0;
      rows.forEach(function (tr) {
        var ok = Object.keys(want).every(function (k) { return (tr.dataset[k] || '').indexOf('|' + want[k] + '|') >= 0; });
        if (ok && q) ok = tr.textContent.toLowerCase().indexOf(q) >= 0;
        tr.hidden = !ok;
        if (ok) visible++;
      });
      sec.querySelectorAll('[data-colvictim]').forEach(function (c) {
        c.hidden = !!want.victim && c.dataset.colvictim !== want.victim;
      });
      sec.hidden = rows.length ? visible === 0 : filtering;
      shown += visible;
    });
    count.textContent = shown + (filtering ? ' matching rows' : ' rows');
  }
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  var jump = document.getElementById('f-jump');
  jump.addEventListener('change', function () { if (jump.value) location.hash = jump.value; jump.value = ''; });
  text.addEventListener('input', apply);
  function key(td) {
    var v = td ? td.dataset.sort : undefined;
    if (v === undefined || v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  document.querySelectorAll('table.board th').forEach(function (th) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var idx = Array.prototype.indexOf.call(th.parentNode.children, th), asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a.cells[idx]), y = key(b.cells[idx]);
        if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);
        var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
"""


def _attr(values: Sequence[str]) -> str:
    return escape("|" + "|".join(values) + "|")


# What a column needs on a 1400-pixel-wide window (12.5 px text, 11 px intervals, 14 px of padding): the
# page cuts a table wider than that into column blocks rather than hide columns behind a scroll bar.
_PX_PER_CHAR, _PX_PER_SMALL_CHAR, _PX_PAD, _PX_LINE = 7.2, 6.4, 14.0, 1290.0
_WRAP_CHARS, _WRAP_MAX_PX, _WRAP_MIN_PX = 24, 22 * 12.5, 8 * 12.5


def _breakable(text: str) -> str:
    """Escaped text that may break after ``+``, ``-``, ``@``, ``/`` and ``_`` (long victim names in headers)."""
    out = escape(text)
    for c in "+-@/_":
        out = out.replace(c, c + "<wbr>")
    return out


def _body(cell: Cell, ci_style: str) -> str:
    """A cell's content: a rate with its interval (and marks) on a second, smaller line; links to records."""
    if cell.ci is not None:
        value, interval = fmt_ci_parts(cell.ci, ci_style)
        interval = (interval + cell.mark).strip()
        text = escape(value) + (f'<span class="ci">{escape(interval)}</span>' if interval else "")
    else:
        text = escape(cell_text(cell, ci_style, percent_sign=False))
    if len(cell.links) == 1 and cell.links[0][0] in ("", cell.text):
        return f'<a href="runs/{escape(cell.links[0][1])}">{text}</a>'
    links = ", ".join(f'<a href="runs/{escape(file)}">{escape(label)}</a>' for label, file in cell.links)
    return " ".join(p for p in (text, links) if p)


def _plain(cell: Cell, ci_style: str) -> str:
    """A cell's visible text on one line, to measure it."""
    text = cell_text(cell, ci_style, percent_sign=False)
    return " ".join(p for p in (text, ", ".join(label for label, _ in cell.links if label)) if p)


def _td(cell: Cell, ci_style: str, colvictim: str | None) -> str:
    body = _body(cell, ci_style)
    sort = "" if cell.sort is None else f' data-sort="{escape(str(cell.sort))}"'
    if _is_numeric(cell):
        kind = ' class="num"'
    else:
        kind = ' class="wrap"' if len(_plain(cell, ci_style)) > _WRAP_CHARS else ""
    col = "" if colvictim is None else f' data-colvictim="{escape(colvictim)}"'
    return f"<td{kind}{sort}{col}>{body}</td>"


def _header(column: str) -> str:
    return column.replace("[95% CI]", "(%) [95% CI]")


def _is_numeric(cell: Cell) -> bool:
    return is_numeric_cell(cell)


def _th(column: str, victim: str | None, numeric: bool) -> str:
    attrs = (' class="num"' if numeric else "") + ("" if victim is None else f' data-colvictim="{escape(victim)}"')
    return f"<th{attrs}>{_breakable(_header(column))}</th>"


def _column_widths(section: Section, ci_style: str) -> tuple[list[float], list[float], list[bool]]:
    """Each column's estimated width in pixels: natural, least (long text wrapped), and whether it wraps."""
    natural, least, wrappable = [], [], []
    for i, column in enumerate(section.columns):
        header = max(longest_token(_header(column).replace("-", "- ").replace("+", "+ ").replace("_", "_ ")), 3) * _PX_PER_CHAR
        widest, small, token = 0.0, 0.0, 0
        for row in section.rows:
            cell = row.cells[i]
            if cell.ci is not None:
                value, interval = fmt_ci_parts(cell.ci, ci_style)
                widest = max(widest, len(value) * _PX_PER_CHAR)
                small = max(small, len((interval + cell.mark).strip()) * _PX_PER_SMALL_CHAR)
            else:
                text = _plain(cell, ci_style)
                widest = max(widest, len(text) * _PX_PER_CHAR)
                token = max(token, longest_token(text))
        wraps = widest > _WRAP_CHARS * _PX_PER_CHAR
        body = min(widest, _WRAP_MAX_PX) if wraps else widest
        natural.append(max(body, small, header) + _PX_PAD)
        least.append(max(_WRAP_MIN_PX if wraps else body, token * _PX_PER_CHAR if wraps else 0, small, header) + _PX_PAD)
        wrappable.append(wraps)
    return natural, least, wrappable


def _table(section: Section, ci_style: str, block: list[int], numeric: list[bool]) -> str:
    colv = section.column_victims or [None] * len(section.columns)
    head = "".join(_th(section.columns[i], colv[i], numeric[i]) for i in block)
    out = [f'<table class="board"><thead><tr>{head}</tr></thead><tbody>']
    for row in section.rows:
        attrs = "".join(f' data-{k}="{_attr(row.tags.get(k, []))}"' for k in FILTER_KEYS)
        out.append(f"<tr{attrs}>" + "".join(_td(row.cells[i], ci_style, colv[i]) for i in block) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _section(index: int, section: Section, ci_style: str, plots: dict) -> str:
    badge = '<span class="badge">SYNTHETIC dataset</span>' if section.synthetic else ""
    out = [f'<section class="lb" id="s{index}" data-kind="{escape(section.kind)}">',
           f"<h2>{escape(section.title)}{badge}</h2>"]
    out += [f'<p class="rules">{escape(section.rules)}</p>'] if section.rules else []
    out += [f'<p class="note">{escape(note)}</p>' for note in section.notes]
    if section.has_table:
        numeric = numeric_columns(section)
        keys = key_columns(section)
        blocks = [b for b, _ in layout(*_column_widths(section, ci_style), keys, _PX_LINE, _WRAP_MAX_PX)]
        out.append('<div class="scroll">')
        for k, block in enumerate(blocks, 1):
            if len(blocks) > 1:
                out.append(f'<p class="part">Columns, part {k} of {len(blocks)}: the table is wider than the page, so '
                           f"each part repeats the first {keys} column(s).</p>")
            out.append(_table(section, ci_style, block, numeric))
        out.append("</div>")
    for path in section.plots:
        out.append(f'<figure><img alt="{escape(path.stem)}" loading="lazy" src="{plots[path]}">'
                   f"<figcaption>{escape(path.name)}</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def render_html(sections: Sequence[Section], ci_style: str = "brackets", embed_plots: bool = False) -> str:
    """The whole page as a string, for a file in the folder of the sections' PNG plots (linked by name),
    or with the plots read and inlined when ``embed_plots``."""
    plots = {p: (f"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode('ascii')}" if embed_plots
                 else escape(p.name)) for s in sections for p in s.plots if p.suffix == ".png"}
    for s in sections:
        s.plots = [p for p in s.plots if p in plots]
    values = {k: sorted({v for s in sections for r in s.rows for v in r.tags.get(k, [])}) for k in FILTER_KEYS}
    labels = {"dataset": "dataset", "threat": "threat model", "victim": "victim", "attack": "attack"}
    selects = "".join(
        f'<label>{labels[k]}<select id="f-{k}" data-key="{k}"><option value="">all</option>'
        + "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values[k]) + "</select></label>"
        for k in FILTER_KEYS)
    title = escape(page_title(sections))
    synthetic = sorted({s.dataset for s in sections if s.synthetic})
    synth_note = (f" Datasets marked SYNTHETIC ({', '.join(synthetic)}) are procedurally generated, not real motion capture."
                  if synthetic else "")
    jump = ('<label>section<select id="f-jump"><option value="">jump to ...</option>'
            + "".join(f'<option value="s{i}">{escape(s.title)}</option>' for i, s in enumerate(sections)) + "</select></label>")
    body = "\n".join(_section(i, s, ci_style, plots) for i, s in enumerate(sections))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_CSS}</style></head>
<body><header><h1>{title}</h1>
<p class="intro">Generated by <code>python -m robustbench_skel leaderboard</code> from the run records in <code>runs/</code>
(each figure links to its record). Rates in percent with 95% confidence intervals; success is over the clips the victim
classifies correctly, robust accuracy over all evaluated clips. Click a column header to sort.{escape(synth_note)}</p>
<div id="filters">{selects}<label>text<input id="f-text" type="search" placeholder="filter rows"></label>{jump}<span id="f-count"></span></div></header>
<main>
{body}
</main>
<script>{_JS}</script>
</body></html>
"""
