"""Tests of paging.py; run with `python3 test_paging.py`."""

import sys

from paging import page, page_count


def test_full_pages():
    assert page_count(6, 3) == 2
    assert page(list(range(6)), 2, 3) == [3, 4, 5]


def test_first_page():
    assert page(["a", "b", "c", "d"], 1, 2) == ["a", "b"]


def test_rejects_bad_sizes():
    try:
        page_count(4, 0)
    except ValueError:
        return
    raise AssertionError("a page size of 0 was accepted")


def main():
    failed = 0
    for name, test in sorted(globals().items()):
        if name.startswith("test_") and callable(test):
            try:
                test()
                print(f"ok   {name}")
            except Exception as err:  # noqa: BLE001 - report every failure
                failed += 1
                print(f"FAIL {name}: {err!r}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
