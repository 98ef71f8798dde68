"""The fuzz tests' memory bound bites: a hypothesis example over FUZZ_MEMORY_LIMIT fails."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .memory import FUZZ_MEMORY_LIMIT, memory_bounded


def test_an_example_over_the_bound_fails() -> None:
    @given(st.sampled_from([FUZZ_MEMORY_LIMIT // 2, 2 * FUZZ_MEMORY_LIMIT]))
    @memory_bounded
    def parse(size: int) -> None:
        bytearray(size)

    with pytest.raises(AssertionError, match=f"over {FUZZ_MEMORY_LIMIT}"):
        parse()
