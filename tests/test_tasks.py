"""Few-shot MNIST tasks: what ``fomaml_utils.data.tasks`` promises about every batch it draws.

Most tests use small synthetic images (random pixels, so no two images are equal) through
``FewShotSampler.from_tensors``; the split tests use the real MNIST (``make test`` prepares it first).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fomaml_utils.data.mnist import load_mnist_tensors, normalize_images
from fomaml_utils.data.tasks import PARTS, SPLITS, TRAIN_IMAGES, FewShotSampler

WAYS, SHOTS, QUERIES = 3, 2, 4


def _synthetic(images_per_digit: int = 12, digits: int = 5, seed: int = 0):
    """Random uint8 images ``[digits * images_per_digit, 28, 28]`` (all distinct) and their digits."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (digits * images_per_digit, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(digits).repeat(images_per_digit)
    return images, labels


def _sampler(classes=None, ways=WAYS, shots=SHOTS, queries=QUERIES, seed=0, images_per_digit=12):
    images, labels = _synthetic(images_per_digit)
    classes = classes if classes is not None else [(d, 0) for d in range(5)]
    return FewShotSampler.from_tensors(images, labels, classes, ways, shots, queries, seed=seed)


@pytest.fixture(scope="module")
def unseen_train():
    return FewShotSampler("unseen-digits", "train", ways=5, shots=1, queries=15, seed=0)


# --------------------------------------------------------------------------- shapes and labels


def test_sample_returns_task_batch_of_documented_shapes_and_dtypes():
    batch = _sampler().sample(7)
    assert batch.support_x.shape == (7, WAYS * SHOTS, 1, 28, 28)
    assert batch.support_y.shape == (7, WAYS * SHOTS)
    assert batch.query_x.shape == (7, WAYS * QUERIES, 1, 28, 28)
    assert batch.query_y.shape == (7, WAYS * QUERIES)
    assert batch.support_x.dtype == batch.query_x.dtype == torch.float32
    assert batch.support_y.dtype == batch.query_y.dtype == torch.int64


def test_labels_are_0_to_ways_minus_1_with_shots_each_in_support_and_queries_each_in_query():
    batch = _sampler().sample(20)
    for t in range(20):
        assert torch.bincount(batch.support_y[t], minlength=WAYS).tolist() == [SHOTS] * WAYS
        assert torch.bincount(batch.query_y[t], minlength=WAYS).tolist() == [QUERIES] * WAYS


def test_layout_is_label_major():
    batch = _sampler().sample(3)
    assert torch.equal(batch.support_y[0], torch.arange(WAYS).repeat_interleave(SHOTS))
    assert torch.equal(batch.query_y[0], torch.arange(WAYS).repeat_interleave(QUERIES))


def test_support_and_query_never_share_an_image():
    # Random pixels: two equal rows can only be the same image drawn twice.
    sampler = _sampler(shots=3, queries=9, images_per_digit=12)  # takes every image of a class
    batch = sampler.sample(50)
    for t in range(50):
        flat = torch.cat([batch.support_x[t], batch.query_x[t]]).flatten(1)
        assert len(torch.unique(flat, dim=0)) == len(flat)


def test_no_image_index_appears_twice_in_a_task_even_across_rotations_of_one_digit():
    sampler = _sampler(classes=[(0, 0), (0, 90), (0, 180), (0, 270)], ways=4, shots=1, queries=2)
    _, image_idx = sampler.sample_indices(100)
    flat = image_idx.flatten(1)
    assert all(len(torch.unique(row)) == flat.shape[1] for row in flat)


def test_classes_of_a_task_are_distinct():
    class_idx, _ = _sampler(ways=5).sample_indices(200)
    assert all(len(torch.unique(row)) == 5 for row in class_idx)


def test_images_of_each_label_come_from_its_class():
    images, labels = _synthetic()
    sampler = FewShotSampler.from_tensors(images, labels, [(d, 0) for d in range(5)], WAYS, SHOTS, QUERIES)
    class_idx, image_idx = sampler.sample_indices(30)
    digits = torch.tensor([d for d, _ in sampler.classes])[class_idx]  # [T, ways]
    assert torch.equal(labels[image_idx], digits.unsqueeze(-1).expand_as(image_idx))


# --------------------------------------------------------------------------- randomness


def test_same_seed_gives_same_tasks():
    a, b = _sampler(seed=3).sample(10), _sampler(seed=3).sample(10)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_different_seeds_give_different_tasks():
    a, b = _sampler(seed=3).sample(10), _sampler(seed=4).sample(10)
    assert not torch.equal(a.support_x, b.support_x)


def test_successive_samples_differ():
    sampler = _sampler()
    assert not torch.equal(sampler.sample(10).query_x, sampler.sample(10).query_x)


def test_sampling_neither_uses_nor_advances_the_global_rng():
    torch.manual_seed(1)
    a = _sampler(seed=5).sample(4)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = _sampler(seed=5).sample(4)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_label_to_class_assignment_is_random_across_tasks():
    # 5 classes, 5 ways: every task uses all classes, so only the labelling varies. Each class
    # should take each label about 1/5 of the time (expected 400 of 2,000; sd ~18).
    class_idx, _ = _sampler(ways=5).sample_indices(2000)
    table = torch.stack([torch.bincount(class_idx[:, label], minlength=5) for label in range(5)])
    assert table.min() > 300 and table.max() < 500


@pytest.mark.parametrize("images_per_digit, queries", [(40, 3), (12, 11)])
def test_every_image_of_a_class_is_equally_likely_in_each_position(images_per_digit, queries):
    # (40, 3): the usual path, distinct draws with replacement; (12, 11): every image is drawn, in
    # random order. Either way each image should be the support image 1/n of the time.
    sampler = _sampler(classes=[(0, 0)], ways=1, shots=1, queries=queries, images_per_digit=images_per_digit)
    _, image_idx = sampler.sample_indices(4000)
    expected = 4000 / images_per_digit  # 100 or 333; standard deviation below 18
    for position in (0, queries):
        counts = torch.bincount(image_idx[:, 0, position], minlength=5 * images_per_digit)[::5]
        assert counts.min() > expected - 80 and counts.max() < expected + 80


# --------------------------------------------------------------------------- rotations


def test_rotated_class_images_are_rot90_of_the_normalised_originals():
    images, labels = _synthetic()
    classes = [(0, 0), (0, 90), (1, 180), (2, 270), (3, 0)]
    def make():
        return FewShotSampler.from_tensors(images, labels, classes, 5, SHOTS, QUERIES, seed=1)

    class_idx, image_idx = make().sample_indices(8)  # the same draw as the batch below
    batch = make().sample(8)
    x = torch.cat([batch.support_x.unflatten(1, (5, SHOTS)), batch.query_x.unflatten(1, (5, QUERIES))], 2)
    originals = normalize_images(images)
    for t in range(8):
        for label in range(5):
            k = classes[class_idx[t, label]][1] // 90
            expected = torch.rot90(originals[image_idx[t, label]], k, dims=(-2, -1))
            assert torch.equal(x[t, label], expected)


def test_rotations_are_counter_clockwise():
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[:, 0, 27] = 255  # top-right pixel
    sampler = FewShotSampler.from_tensors(images, torch.zeros(4, dtype=torch.long), [(0, 90)], 1, 1, 1)
    rotated = sampler.sample(1).support_x[0, 0, 0]
    assert rotated[0, 0] == rotated.max()  # top-right -> top-left


def test_rotations_of_a_digit_split_its_images_into_disjoint_classes():
    sampler = _sampler(classes=[(0, 0), (0, 90), (0, 180), (1, 0)], ways=2, shots=1, queries=1)
    sets = [set(sampler.class_image_indices(c).tolist()) for c in range(4)]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])
    assert len(sets[0] | sets[1] | sets[2]) == 12 and len(sets[3]) == 12


# --------------------------------------------------------------------------- splits (real MNIST)


def test_split_class_lists_have_the_documented_sizes():
    sizes = {name: (len(s.train_classes), len(s.test_classes)) for name, s in SPLITS.items()}
    assert sizes == {"digits": (10, 10), "unseen-digits": (28, 12), "unseen-digits-5": (5, 5)}


@pytest.mark.parametrize("name", ["unseen-digits", "unseen-digits-5"])
def test_unseen_splits_meta_test_on_digits_never_meta_trained_on(name):
    split = SPLITS[name]
    assert {d for d, _ in split.train_classes}.isdisjoint({d for d, _ in split.test_classes})


def test_val_and_test_parts_use_the_meta_test_classes():
    for split in SPLITS.values():
        assert split.classes("train") == split.train_classes
        assert split.classes("val") == split.classes("test") == split.test_classes


def test_train_part_draws_only_images_below_50000_and_uses_all_of_its_digits(unseen_train):
    _, labels = load_mnist_tensors(train=True)
    used = torch.cat([unseen_train.class_image_indices(c) for c in range(28)])
    assert used.max() < TRAIN_IMAGES
    assert len(torch.unique(used)) == len(used) == int((labels[:TRAIN_IMAGES] <= 6).sum())
    _, image_idx = unseen_train.sample_indices(500)
    assert image_idx.max() < TRAIN_IMAGES


def test_val_part_draws_only_images_from_50000_on():
    sampler = FewShotSampler("digits", "val", ways=5, shots=1, queries=15)
    used = torch.cat([sampler.class_image_indices(c) for c in range(10)])
    assert used.min() >= TRAIN_IMAGES and len(torch.unique(used)) == 60_000 - TRAIN_IMAGES
    _, image_idx = sampler.sample_indices(500)
    assert image_idx.min() >= TRAIN_IMAGES


def test_test_part_draws_from_the_test_file():
    sampler = FewShotSampler("unseen-digits-5", "test", ways=5, shots=1, queries=15)
    _, test_labels = load_mnist_tensors(train=False)
    assert len(sampler.images) == 10_000
    class_idx, image_idx = sampler.sample_indices(100)
    digits = torch.tensor([d for d, _ in sampler.classes])[class_idx]
    assert torch.equal(test_labels[image_idx], digits.unsqueeze(-1).expand_as(image_idx))


def test_real_tasks_have_documented_shapes(unseen_train):
    batch, class_idx = unseen_train.sample(16, return_classes=True)
    assert batch.support_x.shape == (16, 5, 1, 28, 28) and batch.query_x.shape == (16, 75, 1, 28, 28)
    assert class_idx.shape == (16, 5)
    assert all(c in SPLITS["unseen-digits"].train_classes for c in unseen_train.task_classes(class_idx[0]))


def test_samplers_without_rotations_share_the_normalised_file():
    a = FewShotSampler("digits", "val", ways=5, shots=1, queries=1)
    b = FewShotSampler("unseen-digits-5", "train", ways=5, shots=1, queries=1)
    assert a.images.data_ptr() == b.images.data_ptr()


def test_parts_of_a_rotated_split_share_one_turned_copy_of_the_file(unseen_train):
    val = FewShotSampler("unseen-digits", "val", ways=5, shots=1, queries=1)
    again = FewShotSampler("unseen-digits", "train", ways=3, shots=2, queries=2, seed=7)
    plain = FewShotSampler("digits", "val", ways=5, shots=1, queries=1)
    assert unseen_train.images.data_ptr() == val.images.data_ptr() == again.images.data_ptr()
    assert plain.images.data_ptr() != val.images.data_ptr()


@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_real_images_of_each_class_are_its_rotation_of_the_normalised_originals(part):
    sampler = FewShotSampler("unseen-digits", part, ways=5, shots=1, queries=1)
    FewShotSampler("unseen-digits", "val" if part == "train" else "train", ways=5, shots=1, queries=1)
    raw, labels = load_mnist_tensors(train=part != "test")
    for c, (digit, rotation) in enumerate(sampler.classes):
        idx = sampler.class_image_indices(c)[:50]
        assert (labels[idx] == digit).all()
        expected = torch.rot90(normalize_images(raw[idx]), rotation // 90, dims=(-2, -1))
        assert torch.equal(sampler.images[idx], expected)


# --------------------------------------------------------------------------- errors


def test_ways_above_the_number_of_classes_is_refused_naming_split_and_part():
    message = r"ways=6 but split 'unseen-digits-5' part 'train' has only 5 classes"
    with pytest.raises(ValueError, match=message):
        FewShotSampler("unseen-digits-5", "train", ways=6, shots=1, queries=1)


def test_shots_plus_queries_above_the_smallest_class_is_refused():
    with pytest.raises(ValueError, match=r"shots\+queries=13 .* has only 12 images"):
        _sampler(shots=3, queries=10)


@pytest.mark.parametrize("name", ["ways", "shots", "queries"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_ways_shots_queries_are_refused(name, value):
    kwargs = {"ways": WAYS, "shots": SHOTS, "queries": QUERIES, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be a positive integer"):
        _sampler(**kwargs)


@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_num_tasks_is_refused(value):
    with pytest.raises(ValueError, match="num_tasks must be a positive integer"):
        _sampler().sample(value)


def test_unknown_split_is_refused_listing_the_known_ones():
    message = r"split='omniglot' is unknown; known splits: 'digits', 'unseen-digits', 'unseen-digits-5'"
    with pytest.raises(ValueError, match=message):
        FewShotSampler("omniglot", "train", ways=5, shots=1, queries=1)


@pytest.mark.parametrize("part", ["valid", "meta-test", ""])
def test_unknown_part_is_refused_listing_the_parts(part):
    with pytest.raises(ValueError, match=r"part=.* is unknown; use one of 'train', 'val', 'test'"):
        FewShotSampler("digits", part, ways=5, shots=1, queries=1)
    assert PARTS == ("train", "val", "test")


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        _sampler(seed=-1)


def test_from_tensors_refuses_images_that_are_not_uint8_28x28():
    images, labels = _synthetic()
    with pytest.raises(ValueError, match=r"images must be a uint8 tensor \[N, 28, 28\]"):
        FewShotSampler.from_tensors(images.float(), labels, [(0, 0)], 1, 1, 1)


def test_from_tensors_refuses_rotations_that_are_not_multiples_of_90():
    images, labels = _synthetic()
    with pytest.raises(ValueError, match=r"classes: rotation must be one of"):
        FewShotSampler.from_tensors(images, labels, [(0, 45)], 1, 1, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_device_is_refused_when_the_sampler_is_built_before_loading_data(monkeypatch):
    import fomaml_utils.data.tasks as tasks

    def no_loading(*args, **kwargs):
        raise AssertionError("the data must not be loaded for a sampler that cannot work")
    monkeypatch.setattr(tasks, "_load_pool", no_loading)
    with pytest.raises(ValueError, match=r"device='cuda' is not available here: .*; use device='cpu'"):
        FewShotSampler("unseen-digits", "test", ways=5, shots=1, queries=15, device="cuda")
    with pytest.raises(ValueError, match=r"device='cuda' is not available here"):
        _synthetic_sampler_on("cuda")


def _synthetic_sampler_on(device):
    images, labels = _synthetic()
    return FewShotSampler.from_tensors(images, labels, [(d, 0) for d in range(5)], WAYS, SHOTS, QUERIES, device=device)


def test_integer_scalars_of_numpy_and_torch_are_accepted_as_counts_and_seeds():
    sampler = _sampler(ways=np.int64(WAYS), shots=torch.tensor(SHOTS), queries=np.int32(QUERIES), seed=np.uint64(3))
    reference = _sampler(seed=3)
    assert (sampler.ways, sampler.shots, sampler.queries, sampler.seed) == (WAYS, SHOTS, QUERIES, 3)
    assert all(type(v) is int for v in (sampler.ways, sampler.shots, sampler.queries, sampler.seed))
    assert torch.equal(sampler.sample(np.int64(4)).support_x, reference.sample(4).support_x)


@pytest.mark.parametrize("value", [True, 3.0, "3", torch.tensor(True), torch.tensor(3.0)],
                         ids=["bool", "float", "str", "bool-tensor", "float-tensor"])
def test_bools_floats_and_text_are_refused_as_counts(value):
    with pytest.raises(ValueError, match="ways must be a positive integer"):
        _sampler(ways=value)
    with pytest.raises(ValueError, match="num_tasks must be a positive integer"):
        _sampler().sample(value)


def test_seed_beyond_torchs_range_is_refused_giving_the_range():
    _sampler(seed=2**64 - 1).sample(1)
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer up to 2\*\*64 - 1"):
        _sampler(seed=2**64)
