"""Tests for dates.py. Run: python3 test_dates.py (exit 1 on any failure)."""

import datetime
import sys

from dates import parse_date


def test_calendar_date():
    assert parse_date("2026-11-24") == datetime.date(2026, 11, 24)


def test_ordinal_date():
    assert parse_date("2026-328") == datetime.date(2026, 11, 24)


def test_iso_week_date():
    assert parse_date("2026-W48-2") == datetime.date(2026, 11, 24)


def test_iso_week_date_first_week():
    # 2026-01-01 is a Thursday, so week 1 starts on Monday 2025-12-29.
    assert parse_date("2026-W01-1") == datetime.date(2025, 12, 29)


def test_rejects_garbage():
    try:
        parse_date("next tuesday")
    except ValueError:
        return
    raise AssertionError("garbage was accepted")


def main():
    failed = 0
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    for name, fn in tests:
        try:
            fn()
        except Exception as err:  # report every failure, not only the first
            failed += 1
            print(f"FAIL {name}: {type(err).__name__}: {err}")
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
