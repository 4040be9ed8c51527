"""The privacy measure: nearest training images, and its known answers."""

from __future__ import annotations

import torch

from classvis.privacy import PrivacySettings, measure, nearest


def test_nearest_matches_brute_force_across_chunks():
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(257, 1, 6, 6, generator=generator)
    queries = torch.rand(13, 1, 6, 6, generator=generator)
    found = nearest(queries, reference, chunk=50)  # several chunks, a ragged last one
    distances = torch.cdist(queries.flatten(1), reference.flatten(1))
    assert torch.equal(found.indices, distances.argmin(1))
    assert torch.allclose(found.distances, distances.min(1).values, atol=1e-5)


def test_many_queries_are_scanned_in_blocks_within_the_distance_budget(monkeypatch):
    """A million synthetic images against 60,000 training images once asked for 32 GB of
    distances at once; queries now go in blocks, with the same answers."""
    from classvis import privacy

    generator = torch.Generator().manual_seed(2)
    reference = torch.rand(300, 1, 5, 5, generator=generator)
    queries = torch.rand(101, 1, 5, 5, generator=generator)
    whole = nearest(queries, reference, chunk=64)
    monkeypatch.setattr(privacy, "DISTANCE_BUDGET", 64 * 7)  # blocks of 7 queries
    blocked = nearest(queries, reference, chunk=64)
    assert torch.equal(blocked.indices, whole.indices)
    assert torch.allclose(blocked.distances, whole.distances)
    assert torch.allclose(blocked.second, whole.second)
    assert len(blocked.distances) == 101


def test_copies_of_training_images_score_zero():
    generator = torch.Generator().manual_seed(1)
    train = torch.rand(500, 1, 8, 8, generator=generator) * 10  # large norms: no cancellation
    test = torch.rand(200, 1, 8, 8, generator=generator) * 10
    copied = train[torch.tensor([3, 141, 499, 0])]
    result = measure(copied, train, test)
    assert result.synthetic.indices.tolist() == [3, 141, 499, 0]
    assert result.synthetic.distances.abs().max().item() == 0.0
    assert result.ratio == 0.0
    assert result.metrics()["privacy/distance_ratio"] == 0.0


def test_fresh_samples_score_about_one_and_far_images_above_one():
    generator = torch.Generator().manual_seed(2)
    train = torch.rand(2000, 1, 5, 5, generator=generator)
    test = torch.rand(300, 1, 5, 5, generator=generator)
    fresh = torch.rand(100, 1, 5, 5, generator=generator)  # same distribution, not training data
    assert 0.8 < measure(fresh, train, test).ratio < 1.25
    far = torch.full((10, 1, 5, 5), 3.0)  # outside the data's range
    assert measure(far, train, test).ratio > 3.0


def test_yardstick_uses_the_first_test_images():
    train = torch.zeros(4, 1, 2, 2)
    test = torch.cat([torch.ones(2, 1, 2, 2), torch.full((5, 1, 2, 2), 100.0)])
    result = measure(torch.ones(1, 1, 2, 2), train, test, PrivacySettings(test_sample=2))
    assert len(result.test.distances) == 2
    assert result.metrics()["privacy/test_nn_distance_median"] == 2.0
    assert result.ratio == 1.0


def test_second_nearest_and_its_ratio_tell_a_copy_from_a_dim_image():
    generator = torch.Generator().manual_seed(3)
    train = torch.rand(300, 1, 6, 6, generator=generator)
    found = nearest(train[:5], train, chunk=64)
    distances = torch.cdist(train[:5].flatten(1), train.flatten(1))
    assert torch.allclose(found.second, distances.sort(1).values[:, 1], atol=1e-5)
    assert found.distance_ratio.max().item() == 0.0          # copies: ratio 0
    dim = torch.zeros(3, 1, 6, 6)                            # black images: near no record in
    dimmed = nearest(dim, train)                             # particular
    assert dimmed.distance_ratio.min().item() > 0.8
    result = measure(dim, train, train[:50] + 0.01)
    assert result.metrics()["privacy/distinct_nearest"] == 1.0


def test_the_yardstick_is_measured_once_per_dataset_and_kept_beside_its_cache(
        mnist_root, tmp_path, monkeypatch, caplog):
    """Every run of a dataset has the same yardstick (its first test images against its training
    set, most of the measure's cost): a second run reads it back and reports the same numbers;
    another ``test_sample`` is another entry; a damaged entry is measured again, never trusted."""
    from conftest import flip_data_byte
    from test_config import settings_for

    from classvis import pipeline, stages

    monkeypatch.setenv("CLASSVIS_DATA", str(mnist_root))
    cache = tmp_path / "cache"
    base = ["dataset=mnist", f"dataset.cache_dir={cache}", "trainer.teacher.epochs=1",
            "trainer.student.steps=5", "teacher_cache.enabled=false", "device=cpu"]
    measured = []
    original = stages.yardstick

    def counted(*args, **kwargs):
        measured.append(args[2].test_sample)
        return original(*args, **kwargs)

    monkeypatch.setattr(stages, "yardstick", counted)
    first = pipeline.run(settings_for(*base, "privacy.test_sample=50"))
    (kept,) = cache.glob("mnist-*.privacy-*.safetensors")
    second = pipeline.run(settings_for(*base, "privacy.test_sample=50"))
    assert measured == [50]
    assert first.privacy is not None and second.privacy is not None
    assert second.privacy.metrics() == first.privacy.metrics()
    assert torch.equal(second.privacy.test.indices, first.privacy.test.indices)
    assert torch.equal(second.privacy.test.second, first.privacy.test.second)

    pipeline.run(settings_for(*base, "privacy.test_sample=40"))
    assert measured == [50, 40] and len(list(cache.glob("mnist-*.privacy-*"))) == 2

    flip_data_byte(kept)
    with caplog.at_level("WARNING", logger="classvis"):
        third = pipeline.run(settings_for(*base, "privacy.test_sample=50"))
    assert measured == [50, 40, 50]
    (line,) = [r.getMessage() for r in caplog.records if "discarding cache" in r.getMessage()]
    assert line == (f"discarding cache {kept}: its content does not match its digest (damaged "
                    "or altered); computing it again")
    assert third.privacy is not None and third.privacy.metrics() == first.privacy.metrics()
