"""seed_everything: one call makes every random stream the series uses repeat."""

import random

import numpy as np
import pytest
import torch

from fomaml_utils.seeding import seed_everything


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_same_seed_repeats_python_numpy_and_torch_draws():
    seed_everything(3)
    first = _draws()
    seed_everything(3)
    assert _draws() == first


def test_different_seeds_give_different_draws():
    seed_everything(3)
    first = _draws()
    seed_everything(4)
    assert _draws() != first


def test_returned_generator_is_seeded():
    a = torch.rand(3, generator=seed_everything(5))
    b = torch.rand(3, generator=seed_everything(5))
    assert torch.equal(a, b)


def test_threads_fixes_torchs_thread_count_and_none_leaves_it():
    seed_everything(0, threads=2)
    assert torch.get_num_threads() == 2
    seed_everything(0)
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("kwargs, name", [({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
                                          ({"seed": 0, "threads": 0}, "threads")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        seed_everything(**kwargs)


def test_seeds_up_to_torchs_limit_are_accepted_and_beyond_it_refused_giving_the_range():
    from fomaml_utils.seeding import MAX_SEED

    assert MAX_SEED == 2**64 - 1
    seed_everything(MAX_SEED, deterministic=False)
    with pytest.raises(ValueError, match=r"up to 2\*\*64 - 1 = 18446744073709551615, got 18446744073709551616"):
        seed_everything(2**64, deterministic=False)
