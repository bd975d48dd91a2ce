"""What the studio writes into a CSV a person opens in a spreadsheet."""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"): such text cells are written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """The value as written to the CSV: None empty, booleans as true/false, text that a
    spreadsheet would run as a formula behind an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
