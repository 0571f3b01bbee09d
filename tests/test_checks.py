"""The argument checks every public function starts with: a number and a tensor holding it get the same verdict
at each bound, open or closed."""
import pytest
import torch

from diffnotes._checks import check_range

CASES = [  # (value, low, high, low_open, high_open, accepted)
    (1.0, 1.0, None, False, False, True),
    (1.0, 1.0, None, True, False, False),
    (0.999, 1.0, None, False, False, False),
    (2.0, None, 2.0, False, False, True),
    (2.0, None, 2.0, False, True, False),
    (2.001, None, 2.0, False, False, False),
    (0.5, 0.0, 1.0, True, True, True),
    (-3, None, None, False, False, True),
]


@pytest.mark.parametrize("value,low,high,low_open,high_open,accepted", CASES)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_check_range_at_each_bound(value, low, high, low_open, high_open, accepted, as_tensor):
    v = torch.tensor([value, value]) if as_tensor else value
    call = lambda: check_range("x", v, low, high, low_open=low_open, high_open=high_open)  # noqa: E731
    if accepted:
        call()
    else:
        with pytest.raises(ValueError, match="x must lie in"):
            call()


def test_check_range_refuses_non_finite_numbers():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="must be finite"):
            check_range("x", bad, 0.0)
