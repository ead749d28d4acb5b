"""Seeded streams and seeds depend on (seed, purpose, ...) only: the same names give the same
numbers in any order, other names give other numbers."""

from dreamer_core.seeds import derive_seed, stream


def test_streams_are_independent_of_order_and_distinct_per_purpose():
    a1 = stream(3, "shapes").integers(0, 2**31, 4).tolist()
    stream(3, "other").integers(0, 2**31, 100)
    assert stream(3, "shapes").integers(0, 2**31, 4).tolist() == a1
    assert stream(3, "splits").integers(0, 2**31, 4).tolist() != a1
    assert stream(4, "shapes").integers(0, 2**31, 4).tolist() != a1


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(1, "a", 0) == derive_seed(1, "a", 0) != derive_seed(1, "a", 1)
    assert derive_seed(1, "a", 0) == derive_seed(1, "a", "0")  # names are compared as text
    assert 0 <= derive_seed(7, "x") < 2**31 - 1
