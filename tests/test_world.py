"""The shapes world is deterministic and honest: captions, stored attributes and pixels agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.config import ShapesConfig
from harness.data import splits
from harness.data.world import BACKGROUNDS, COLORS, ShapesWorld, paired_correctly, prompts_by_kind


def nearest_colour(pixel: np.ndarray, palette: dict) -> str:
    return min(palette, key=lambda name: float(np.sum((np.array(palette[name]) - pixel) ** 2)))


def test_same_seed_same_bytes_other_seed_other_images():
    world = ShapesWorld(ShapesConfig(), 16)
    p1, s1, a = world.generate(200, seed=3)
    p2, s2, b = world.generate(200, seed=3)
    _, _, c = world.generate(200, seed=4)
    assert a.tobytes() == b.tobytes()
    assert [p.caption for p in p1] == [p.caption for p in p2]
    assert not np.array_equal(a, c)


def test_data_artifact_is_deterministic(smoke_config, smoke_data, tmp_path):
    first, second = (smoke_data(smoke_config(cache=tmp_path / name))["data"] for name in ("a", "b"))
    for split in splits.SPLITS:
        one, two = splits.load_split(first, split), splits.load_split(second, split)
        assert np.asarray(one.pixels).tobytes() == np.asarray(two.pixels).tobytes()
        assert one.captions == two.captions


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_captions_attributes_and_pixels_agree(resolution):
    world = ShapesWorld(ShapesConfig(), resolution)
    prompts, scenes, images = world.generate(300, seed=7)
    kinds = {p.kind for p in prompts}
    assert kinds == {"full", "free", "binding"}
    for prompt, scene, image in zip(prompts, scenes, images):
        record = json.loads(json.dumps(scene.to_record(world.vocab.grid)))
        # What the caption mentions is what the stored attributes say.
        assert all(world.check(prompt, record).values()), (prompt.caption, record)
        for word in prompt.mentioned.values():
            assert word in prompt.caption
        # The pixels say it too: the background colour in a free corner, each object's colour at its
        # centre, and its mass inside its stated grid cell.
        assert nearest_colour(image[0, 0].astype(float), BACKGROUNDS) == scene.background or any(
            o.row == 0 and o.col == 0 for o in scene.objects)
        for obj in scene.objects:
            y, x = int(obj.cy * resolution), int(obj.cx * resolution)
            assert nearest_colour(image[y, x].astype(float), COLORS) == obj.color, prompt.caption
            colour = np.array(COLORS[obj.color], dtype=float)
            mask = np.abs(image.astype(float) - colour).sum(-1) < 30
            ys, xs = np.nonzero(mask)
            grid = world.vocab.grid
            assert int(ys.mean() / resolution * grid) == obj.row
            assert int(xs.mean() / resolution * grid) == obj.col


def test_check_catches_a_swapped_binding():
    world = ShapesWorld(ShapesConfig(), 16)
    prompt = prompts_by_kind(world, ["binding"], 1, seed=0)[0]
    scene = world.sample_scene(prompt, np.random.default_rng(0)).to_record(world.vocab.grid)
    a, b = scene["objects"]
    swapped = {**scene, "objects": [{**a, "color": b["color"]}, {**b, "color": a["color"]}]}
    assert all(world.check(prompt, scene).values())
    assert not all(world.check(prompt, swapped).values())


def test_swap_binding_scores_the_pairing_of_shown_shapes_and_colours():
    world = ShapesWorld(ShapesConfig(), 16)
    prompt = prompts_by_kind(world, ["binding"], 1, seed=0)[0]
    scene = world.sample_scene(prompt, np.random.default_rng(0)).to_record(world.vocab.grid)
    a, b = scene["objects"]
    assert paired_correctly(prompt, scene) is True
    assert paired_correctly(prompt, {**scene, "objects": [{**a, "color": b["color"]}, {**b, "color": a["color"]}]}) \
        is False
    # One shape missing, or a colour the caption does not name: nothing to pair.
    assert paired_correctly(prompt, {**scene, "objects": [a]}) is None
    other = next(c for c in world.vocab.colors if c not in (a["color"], b["color"]))
    assert paired_correctly(prompt, {**scene, "objects": [a, {**b, "color": other}]}) is None


def test_two_object_scenes_draw_large_objects_and_leave_no_size_free():
    world = ShapesWorld(ShapesConfig(), 16)
    prompt = prompts_by_kind(world, ["binding"], 1, seed=0)[0]
    scenes, _ = world.references(prompt, 20, seed=0)
    assert {o.size for s in scenes for o in s.objects} == {"large"}
    assert not any(key.endswith(".size") for key in world.free_attributes(prompt))
    assert any(key.endswith(".size") for key in prompt.free_attributes(world.vocab))  # the caption leaves it
    anything = ShapesWorld(ShapesConfig(two_object_size="any"), 16)
    assert len({o.size for s in anything.references(prompt, 40, seed=0)[0] for o in s.objects}) == 2


def test_references_fill_only_free_attributes():
    world = ShapesWorld(ShapesConfig(), 16)
    prompt = prompts_by_kind(world, ["free"], 1, seed=1)[0]
    scenes, images = world.references(prompt, 50, seed=0)
    assert images.shape == (50, 16, 16, 3)
    records = [s.to_record(world.vocab.grid) for s in scenes]
    assert all(all(world.check(prompt, r).values()) for r in records)
    free = prompt.free_attributes(world.vocab)
    assert free, prompt.caption
    for key in free:
        attribute = key.split(".")[-1]
        values = {r["background"] if key == "background" else r["objects"][0][attribute] for r in records}
        assert len(values) > 1, key  # the free attribute actually varies


def test_generation_is_fast_enough():
    import time
    world = ShapesWorld(ShapesConfig(), 16)
    started = time.perf_counter()
    world.generate(4000, seed=0)
    rate = 4000 / (time.perf_counter() - started)
    assert rate > 1000, f"{rate:.0f} images/s: 50k images would take over 50 s"
