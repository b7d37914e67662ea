"""A corpus of odd and hostile CSV uploads, built in code so no binary fixtures live in git.

Each case says what ingest must do with the bytes: either parse them to the expected shape,
kinds and values, or raise IngestError with a message containing the expected words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from core.ingest import Limits

UNSET = object()  # "don't check" for fields where None is a meaningful expectation


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    limits: Limits = Limits()
    error: tuple[str, ...] = ()  # words the IngestError message must contain
    shape: tuple[int, int] | None = None
    kinds: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[object]] = field(default_factory=dict)  # None = missing
    names: tuple[str, ...] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    warning: str | None = None  # substring of one schema warning
    pii: dict[str, str | None] = field(default_factory=dict)
    target: object = UNSET


def _rows(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _luhn_complete(prefix: str) -> str:
    """Append the check digit that makes `prefix` pass the Luhn test."""
    for check in "0123456789":
        digits = prefix + check
        total = sum(
            (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
            for i, d in enumerate(int(c) for c in reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable: one check digit always fits")


_RNG = random.Random(7)
_CARDS = [
    _luhn_complete("4" + "".join(_RNG.choice("0123456789") for _ in range(14))) for _ in range(10)
]
_PEOPLE = [
    f"user{i}@example.com,+44 20 7946 {1000 + i},{100 + i}-{10 + i}-{1000 + i},"
    f"{_CARDS[i][:4]} {_CARDS[i][4:8]} {_CARDS[i][8:12]} {_CARDS[i][12:]},{125.5 * (i + 1)}"
    for i in range(10)
]
_WIDE_400 = ",".join(f"c{j}" for j in range(400)) + "\n" + ",".join("1" for _ in range(400)) + "\n"
_WIDE_5000 = (
    ",".join(f"c{j}" for j in range(5000)) + "\n" + ",".join("1" for _ in range(5000)) + "\n"
)
_MEGA = "y" * 2**20
_LATIN1_WITH_C1 = ("city,note\n" + "München,ok\n" * 30 + "Köln,x\x8dy\n").encode("latin-1")
_CODES = [f"AB{_RNG.randrange(10**6):06d}X{i}" for i in range(25)]

CASES: list[Case] = [
    Case("empty", b"", error=("The file is empty",)),
    Case("whitespace_only", b"  \n\t\r\n   \n", error=("The file is empty",)),
    Case("bom_only", b"\xef\xbb\xbf\n", error=("The file is empty",)),
    Case("header_only", b"a,b,c\n", error=("header but no data rows",)),
    Case("header_and_empty_rows", b"a,b\n,\n , \n", error=("header but no data rows",)),
    Case(
        "ragged_row_too_many_fields",
        b"a,b,c\n1,2,3\n4,5,6,7\n",
        error=("Row 3 has 4 values but the header has 3 columns",),
    ),
    Case(
        "ragged_row_counts_blank_and_quoted_lines",
        b'a,b\n"x\ny",1\n\n2,3\n4,5,6\n',
        error=("Row 5 has 3 values",),
    ),
    Case("extra_unnamed_first_column", b"a,b\n0,1,2\n1,3,4\n", error=("Row 2 has 3 values",)),
    Case(
        "short_row_allowed",
        b"a,b,c\n1,2,3\n4,5\n",
        shape=(2, 3),
        values={"c": [3.0, None], "a": [1.0, 4.0]},
    ),
    Case("png_header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", error=("PNG image",)),
    Case("xlsx_workbook", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 30, error=("Excel", "CSV")),
    Case(
        "binary_garbage_with_nul",
        random.Random(1).randbytes(2000).replace(b"PK", b"pk"),
        error=("not text", "NUL bytes"),
    ),
    Case("nul_byte_in_text", b"a,b\n1,\x002\n", error=("not text", "NUL bytes")),
    Case("control_chars_no_nul", bytes(range(1, 32)) * 40, error=("not text",)),
    Case(
        "cp1252_euro_and_accent",
        "name,price\nCafé,€5\nCrème,€7\n".encode("cp1252"),
        encoding="cp1252",
        values={"name": ["Café", "Crème"], "price": ["€5", "€7"]},
    ),
    Case(
        "latin1_text_reads_as_cp1252",
        "city,country\nZürich,CH\nÑandú,ES\n".encode("latin-1"),
        encoding="cp1252",
        values={"city": ["Zürich", "Ñandú"]},
    ),
    Case(
        "latin1_with_byte_undefined_in_cp1252",
        _LATIN1_WITH_C1,
        encoding="latin-1",
        shape=(31, 2),
        values={"city": ["München"]},
    ),
    Case(
        "utf8_bom_clean_first_name",
        b"\xef\xbb\xbfid,value\n1,2\n3,4\n",
        encoding="utf-8-sig",
        names=("id", "value"),
    ),
    Case(
        "utf16_with_bom_decodes",
        "a\tb\nx\t1\ny\t2\n".encode("utf-16"),
        encoding="utf-16",
        delimiter="\t",
        values={"a": ["x", "y"], "b": [1.0, 2.0]},
    ),
    Case("utf16_without_bom", "a,b\nx,1\n".encode("utf-16-le"), error=("NUL bytes", "UTF-8")),
    Case(
        "semicolon_comma_decimals",
        b"name;amount;count\nA;1,5;3\nB;2.000,25;4\nC;3;5\n",
        delimiter=";",
        values={"amount": [1.5, 2000.25, 3.0], "count": [3.0, 4.0, 5.0]},
    ),
    Case(
        "tab_delimiter",
        b"a\tb\tc\n1\t2\tx, y\n3\t4\tz\n",
        delimiter="\t",
        shape=(2, 3),
        values={"c": ["x, y", "z"]},
    ),
    Case(
        "pipe_delimiter",
        b"a|b\n1,5|x\n2,5|y\n",
        delimiter="|",
        values={"a": ["1,5", "2,5"], "b": ["x", "y"]},
    ),
    Case(
        "quoted_newline_in_field",
        b'id,comment\n1,"line one\nline two"\n2,plain\n',
        shape=(2, 2),
        values={"comment": ["line one\nline two", "plain"]},
    ),
    Case(
        "quoted_delimiter_and_quotes",
        b'a,b\n"x, y",1\n"say ""hi""",2\n',
        values={"a": ["x, y", 'say "hi"']},
    ),
    Case("crlf_line_ends", b"a,b\r\n1,x\r\n2,y\r\n", values={"b": ["x", "y"]}),
    Case("unclosed_quote", b'a,b\n1,"oops\n2,3\n', error=("Row 2", "never closed")),
    Case(
        "duplicate_column_names",
        b"age,x,y,z,age\n1,2,3,4,5\n",
        error=("Column names must be unique", "'age' appears twice (columns 1 and 5)"),
    ),
    Case("names_equal_after_strip", b"age, age\n1,2\n", error=("'age' appears twice",)),
    Case(
        "empty_column_name_renamed",
        b"a,,c\n1,2,3\n4,5,6\n",
        names=("a", "column_2", "c"),
        warning="Column 2 has no name",
    ),
    Case("single_column", b"value\n1.5\n2.5\n3.5\n", shape=(3, 1), delimiter=","),
    Case("columns_5000_over_limit", _WIDE_5000.encode(), error=("5,000 columns", "limit is 500")),
    Case("columns_400_ok", _WIDE_400.encode(), shape=(1, 400)),
    Case(
        "rows_over_limit",
        _rows("a", [str(i) for i in range(11)]),
        limits=Limits(max_rows=10),
        error=("more than 10 data rows", "limit is 10"),
    ),
    Case(
        "rows_at_limit",
        _rows("a", [str(i) for i in range(10)]),
        limits=Limits(max_rows=10),
        shape=(10, 1),
    ),
    Case(
        "bytes_over_limit",
        b"a\n" + b"1\n" * 100,
        limits=Limits(max_bytes=100),
        error=("202 bytes", "the limit is 100 bytes", "MB"),
    ),
    Case(
        "blank_and_delimiter_only_rows_skipped",
        b"a,b\n1,2\n,\n\n3,4\nNA,null\n",
        shape=(3, 2),
        warning="Skipped 1 row with no values",
    ),
    Case(
        "all_missing_column",
        _rows(
            "x,empty",
            [
                f"{i * 1.5},{tok}"
                for i, tok in enumerate(["", "NA", "null", "?", "-", "N/A", "nan"])
            ],
        ),
        kinds={"x": "numeric", "empty": "mostly_missing"},
        values={"empty": [None] * 7},
    ),
    Case(
        "constant_column",
        _rows("x,same", [f"{i * 1.5},EUR" for i in range(6)]),
        kinds={"same": "constant", "x": "numeric"},
    ),
    Case(
        "single_class_target_never_suggested",
        _rows("feature,target", ["1.5,yes", "2.25,yes", "9.75,yes", "4.5,yes"]),
        kinds={"target": "constant"},
        target=None,
    ),
    Case(
        "formula_cells_kept_and_warned",
        _rows("name,note", ["A,=cmd|' /C calc'!A0", "B,+1+1", "C,@SUM(A1)", "D,-5", "E,plain"]),
        delimiter=",",
        values={"note": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-5", "plain"]},
        warning="Column 'note' has 3 cells that a spreadsheet would run as formulas",
    ),
    Case(
        "megabyte_field_over_cell_limit",
        f"id,notes\n1,short\n2,{_MEGA}\n".encode(),
        limits=Limits(max_cell_chars=1000),
        error=("Row 3", "column 2 ('notes')", "1,048,576 characters", "limit is 1,000"),
    ),
    Case(
        "megabyte_field_within_limit",
        f"id,notes\n1,short\n2,{_MEGA}\n".encode(),
        limits=Limits(max_cell_chars=2**21),
        shape=(2, 2),
    ),
    Case(
        "nan_inf_huge_numbers",
        b"x\n1\nNaN\ninf\n-Infinity\n1e308\n2\n",
        kinds={"x": "numeric"},
        values={"x": [1.0, None, None, None, 1e308, 2.0]},
        warning="2 infinite values became missing",
    ),
    Case(
        "mostly_strings_stay_strings",
        _rows("v", [str(i) for i in range(8)] + ["abc", "def"]),
        values={"v": ["0", "1"]},
    ),
    Case(
        "few_strings_in_numbers_become_missing",
        _rows("v", [str(i * 1.25) for i in range(40)] + ["oops"]),
        kinds={"v": "numeric"},
        warning="1 value that could not be read as a number (e.g. 'oops')",
    ),
    Case(
        "pii_email_phone_ssn_card_and_amount",
        _rows("contact,tel,national,card,Amount", _PEOPLE),
        pii={
            "contact": "email addresses",
            "tel": "phone numbers",
            "national": "national-id-like numbers",
            "card": "card-like numbers",
            "Amount": None,
        },
        kinds={"Amount": "numeric"},
    ),
    Case(
        "card_digits_kept_as_text",
        _rows("pan,x", [f"{c},{i}" for i, c in enumerate(_CARDS)]),
        pii={"pan": "card-like numbers"},
        values={"pan": _CARDS[:2]},
    ),
    Case(
        "pii_by_column_name_only",
        _rows(
            "First Name,product_name,street,birth_date,E-Mail",
            [f"Ann{i},Tea {i % 3},{i} Main St,1980-01-{i + 1:02d},hidden" for i in range(6)],
        ),
        pii={
            "First Name": "name column",
            "product_name": None,
            "street": "address column",
            "birth_date": "date of birth column",
            "E-Mail": "email addresses",
        },
    ),
    Case(
        "unquoted_delimiter_in_single_column",
        b"review\ngood, tasty\n",
        error=("Row 2 has 2 values but the header has 1 column.", "Quote values"),
    ),
    Case(
        "trailing_delimiter_on_every_line",
        b"a,b,\n1.5,x,\n2.5,y,\n",
        names=("a", "b", "column_3"),
        kinds={"column_3": "mostly_missing"},
    ),
    Case(
        "luhn_failing_16_digits_are_not_cards",
        _rows("token", [c[:-1] + str((int(c[-1]) + 1) % 10) for c in _CARDS]),
        pii={"token": None},
    ),
    Case(
        "leading_zeros_are_codes",
        _rows("zip,n", ["02139,1", "00501,2", "10001,3"]),
        values={"zip": ["02139", "00501", "10001"]},
        pii={"zip": "address column"},
    ),
    Case(
        "datetime_detected",
        _rows(
            "when,x",
            [f"2024-{m:02d}-{d:02d} 10:{d:02d},{d * 1.5}" for m in (1, 2) for d in range(1, 11)],
        ),
        kinds={"when": "datetime", "x": "numeric"},
    ),
    Case(
        "id_by_name_and_by_content",
        _rows(
            "customer_id,code,row,v", [f"C{i:03d},{_CODES[i]},{i + 1},{i * 0.5}" for i in range(25)]
        ),
        kinds={"customer_id": "id", "code": "id", "row": "id", "v": "numeric"},
    ),
    Case(
        "integer_codes_are_categorical",
        _rows("grade,x", [f"{i % 3 + 1},{i * 1.5}" for i in range(12)]),
        kinds={"grade": "categorical"},
        target="grade",
    ),
    Case(
        "target_by_name_wins_over_later_categorical",
        _rows(
            "churn,plan,x",
            [f"{'yes' if i % 3 else 'no'},{'abc'[i % 3]},{i * 1.5}" for i in range(12)],
        ),
        kinds={"churn": "categorical", "plan": "categorical"},
        target="churn",
    ),
]
