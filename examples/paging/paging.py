"""Split a list of records into numbered pages."""


def page_count(total, size):
    """How many pages it takes to show `total` items, `size` per page."""
    if size <= 0:
        raise ValueError(f"page size must be positive, got {size}")
    return total // size


def page(items, number, size):
    """The items on page `number` (1-based), at most `size` of them."""
    if number < 1 or number > page_count(len(items), size):
        raise IndexError(f"there is no page {number}")
    start = (number - 1) * size
    return items[start:start + size]
