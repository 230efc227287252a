"""Write a :class:`~flinkpulse.report.Report` as PDF (reportlab) or HTML: the same content.

reportlab (BSD, maintained since 2000, pure Python wheels) lays out paragraphs, tables and
images into PDF pages without any system library; WeasyPrint would need Pango from the OS.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from flinkpulse.report import Figure, Report, Table, fmt_time


def _header(r: Report) -> list[str]:
    return [
        f"Period: {fmt_time(r.period.start)} to {fmt_time(r.period.end)}",
        f"Generated {fmt_time(r.generated_at)} from ClickHouse database {r.database}",
    ]


def to_html(r: Report) -> str:
    """One self-contained HTML page (charts embedded as PNG data URIs)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(r.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;"
        "padding:.2em .5em;font-size:.9em;text-align:left}th{background:#eef3f7}"
        "img{max-width:100%}h2{border-bottom:2px solid #1FA8C9;margin-top:2em}"
        "caption{font-weight:bold;text-align:left;padding:.3em 0}</style></head><body>",
        f"<h1>{e(r.title)}</h1>",
        *[f"<p>{e(line)}</p>" for line in _header(r)],
        "<table><caption>Summary</caption>",
        *[f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in r.summary],
        "</table>",
    ]
    for s in r.sections:
        out.append(f"<h2>{e(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Table):
                out.append(f"<table><caption>{e(b.title)}</caption><tr>")
                out += [f"<th>{e(c)}</th>" for c in b.columns]
                out.append("</tr>")
                for row in b.rows:
                    out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
                out.append("</table>")
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode()
                out.append(
                    f'<figure><img alt="{e(b.title)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(b.title)}</figcaption></figure>"
                )
            else:
                out.append(f"<p>{e(b)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def to_pdf(r: Report) -> bytes:
    """The report as an A4 PDF: title page header, summary, one heading per section."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, TableStyle
    from reportlab.platypus import Table as RLTable

    styles = getSampleStyleSheet()
    for heading in ("Heading2", "Heading4"):  # never a heading alone at the foot of a page
        styles[heading].keepWithNext = 1
    cell = styles["BodyText"].clone("cell", fontSize=7.5, leading=9)
    head = cell.clone("head", fontName="Helvetica-Bold")
    e = html.escape
    width = A4[0] - 3 * cm

    def table(title: str | None, columns: list[str] | None, rows: list[list[str]]) -> list[object]:
        data = ([[Paragraph(e(c), head) for c in columns]] if columns else []) + [
            [Paragraph(e(str(c)), cell) for c in row] for row in rows
        ]
        t = RLTable(data, repeatRows=1 if columns else 0, hAlign="LEFT")
        style = [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        if columns:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef3f7")))
        t.setStyle(TableStyle(style))
        flow: list[object] = [Paragraph(e(title), styles["Heading4"])] if title else []
        return [*flow, t, Spacer(1, 0.3 * cm)]

    story: list[object] = [Paragraph(e(r.title), styles["Title"])]
    story += [Paragraph(e(line), styles["Normal"]) for line in _header(r)]
    story.append(Spacer(1, 0.4 * cm))
    story += table("Summary", None, [[k, v] for k, v in r.summary])
    for s in r.sections:
        story.append(Paragraph(e(s.title), styles["Heading2"]))
        for b in s.blocks:
            if isinstance(b, Table):
                story += table(b.title, b.columns, b.rows)
            elif isinstance(b, Figure):
                img = Image(io.BytesIO(b.png), width=width, height=width * 0.4)
                story += [img, Paragraph(e(b.title), styles["Italic"]), Spacer(1, 0.3 * cm)]
            else:
                story.append(Paragraph(e(b), styles["BodyText"]))

    def footer(canvas: object, doc: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont("Helvetica", 7)  # type: ignore[attr-defined]
        canvas.drawString(  # type: ignore[attr-defined]
            1.5 * cm,
            1 * cm,
            f"flinkpulse report, {fmt_time(r.period.start)} to {fmt_time(r.period.end)}"
            f" — page {doc.page}",  # type: ignore[attr-defined]
        )
        canvas.restoreState()  # type: ignore[attr-defined]

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.8 * cm,
        title=r.title,
        author="flinkpulse",
        # the same bytes for the same report: no creation time or random document id
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def write(r: Report, out: Path, html_too: bool = False) -> list[Path]:
    """Write the PDF to `out` (and the HTML beside it, same name, .html); the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_pdf(r))
    written = [out]
    if html_too:
        h = out.with_suffix(".html")
        h.write_text(to_html(r))
        written.append(h)
    return written
