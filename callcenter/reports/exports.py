"""Tables as downloads: CSV in UTF-8 with a byte-order mark (so that Excel reads Chinese
text correctly) and XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum

import xlsxwriter

Cell = str | int | float | bool | date | datetime | None


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    text = str(value)
    # A cell that starts like a formula is read as text by a spreadsheet, never run.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    """The table as CSV, UTF-8 with a BOM, CRLF line ends (what Excel expects)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_text(cell) for cell in row])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def to_xlsx(title: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    """The table as one XLSX sheet; numbers stay numbers, dates are dates (no zone: the
    centre's local clock, as shown in the console)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True})
    sheet = book.add_worksheet(title[:31] or "report")
    bold = book.add_format({"bold": True})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    for column, header in enumerate(headers):
        sheet.write_string(0, column, header, bold)
        sheet.set_column(column, column, max(10, min(40, len(header) * 2)))
    for line, row in enumerate(rows, start=1):
        for column, cell in enumerate(row):
            if cell is None:
                continue
            if isinstance(cell, bool):
                sheet.write_boolean(line, column, cell)
            elif isinstance(cell, int | float):
                sheet.write_number(line, column, cell)
            elif isinstance(cell, datetime):
                sheet.write_datetime(line, column, cell, stamp)
            elif isinstance(cell, date):
                sheet.write_datetime(line, column, datetime.combine(cell, datetime.min.time()), day)
            else:
                sheet.write_string(line, column, cell)
    sheet.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()
