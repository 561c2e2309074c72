from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError
from functions.text.inputs import decode_texts


@pytest.mark.parametrize(
    ("items", "expected", "error"),
    [
        ([b"abc", "d\u00e9f".encode()], ["abc", "d\u00e9f"], None),
        ([b"\xff\xfe"], None, "not valid UTF-8"),
        ([b"x" * 11], None, "limit 10"),
    ],
)
def test_decode_texts(items, expected, error):
    array = np.array(items, dtype=object)
    if error:
        with pytest.raises(InvalidInputError, match=error):
            decode_texts(array, max_chars=10)
    else:
        assert decode_texts(array, max_chars=10) == expected
