"""Properties that must hold for any input, checked with hypothesis on generated cases: splits,
bootstrap intervals, cache keys and the JSON form of training events."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import types
import typing
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tl_desktop.config import DataConfig  # noqa: E402
from tl_desktop.engine.caching.store import cache_key  # noqa: E402
from tl_desktop.engine.data.dataset import scan_dataset  # noqa: E402
from tl_desktop.engine.evaluation.evaluate import Predictions, compute_metrics  # noqa: E402
from tl_desktop.engine.training import events  # noqa: E402

MODEST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPLITS = ("train", "val", "test")


# ----- splits ------------------------------------------------------------------------------------

def _tiny_png(path: Path, content: int) -> None:
    """An 8x8 picture whose bytes depend only on ``content``: equal contents are identical files."""
    from PIL import Image

    rng = np.random.default_rng(content)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


# Per class, the content of each file: equal numbers within a class are copies of one picture.
class_contents = st.lists(st.integers(0, 4), min_size=1, max_size=8)
folders = st.lists(class_contents, min_size=2, max_size=3)
fractions = st.tuples(st.floats(0.05, 0.5), st.floats(0.0, 0.35)).filter(lambda f: f[0] + f[1] < 0.9)


def _scan(folder: str, contents: list[list[int]], fractions: tuple[float, float], seed: int,
          cross_class: bool = False):
    root = Path(folder) / "images"
    for c, files in enumerate(contents):
        for i, content in enumerate(files):
            # Without cross_class each class draws from its own pictures; with it, content 0 is
            # the same picture in every class (the same file filed under two labels).
            picture = content if cross_class and content == 0 else 1000 * (c + 1) + content
            path = root / f"class{c}" / f"img{i:02d}.png"
            if not path.exists():
                _tiny_png(path, picture)
    config = DataConfig(root=str(root), val_fraction=fractions[0], test_fraction=fractions[1], seed=seed)
    return root, scan_dataset(config).split


def _content_of(path: str) -> bytes:
    return Path(path).read_bytes()


@MODEST
@given(contents=folders, fractions=fractions, seed=st.integers(0, 2**31 - 1))
def test_split_is_a_stratified_partition_that_keeps_copies_together(contents, fractions, seed):
    with tempfile.TemporaryDirectory(prefix="split-property-") as folder:
        _check_split(folder, contents, fractions, seed)


def _check_split(folder: str, contents: list[list[int]], fractions: tuple[float, float], seed: int) -> None:
    root, split = _scan(folder, contents, fractions, seed)
    parts = {name: [s.path for s in getattr(split, name)] for name in SPLITS}
    every_file = sorted(str(p) for p in root.rglob("*.png"))
    assert sorted(p for paths in parts.values() for p in paths) == every_file  # each file in exactly one part

    where: dict[bytes, set[str]] = {}
    for name, paths in parts.items():
        for path in paths:
            where.setdefault(_content_of(path), set()).add(name)
    assert all(len(names) == 1 for names in where.values()), "a copy straddles two parts"

    assert split.classes == [f"class{c}" for c in range(len(contents))]
    for name in SPLITS:  # labels follow the class folders
        assert all(Path(s.path).parent.name == split.classes[s.label] for s in getattr(split, name))
    for label, files in enumerate(contents):
        counts = {name: sum(s.label == label for s in getattr(split, name)) for name in SPLITS}
        assert counts["train"] >= 1  # every class keeps something to learn from
        if len(set(files)) >= 2:  # at least two different pictures: one of them can be validated on
            assert counts["val"] >= 1
        if len(set(files)) == len(files) >= 2:  # no copies: the shares follow the fractions
            n = len(files)
            assert counts["val"] <= max(1, n * fractions[0] + 1)
            assert counts["test"] <= n * fractions[1] + 1

    _, again = _scan(folder, contents, fractions, seed)  # the same files scanned again
    assert {name: [Path(s.path).name for s in getattr(again, name)] for name in SPLITS} == \
        {name: [Path(p).name for p in paths] for name, paths in parts.items()}


@MODEST
@given(contents=folders, fractions=fractions, seed=st.integers(0, 2**31 - 1))
def test_a_picture_filed_under_two_classes_stays_in_one_part(contents, fractions, seed):
    with tempfile.TemporaryDirectory(prefix="split-property-") as folder:
        _, split = _scan(folder, contents, fractions, seed, cross_class=True)
        where: dict[bytes, set[str]] = {}
        for name in SPLITS:
            for sample in getattr(split, name):
                where.setdefault(_content_of(sample.path), set()).add(name)
    assert all(len(names) == 1 for names in where.values())


# ----- intervals ---------------------------------------------------------------------------------

rows = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.floats(0.51, 1.0)), min_size=1, max_size=30)


def _predictions(k: int, drawn: list[tuple[int, int, float]]) -> Predictions:
    labels = [label % k for label, _, _ in drawn]
    probs = np.empty((len(drawn), k))
    for i, (_, predicted, confidence) in enumerate(drawn):
        probs[i] = (1 - confidence) / (k - 1)
        probs[i, predicted % k] = confidence  # > 1/k, so it is the most probable class
    return Predictions([f"{i}.png" for i in range(len(drawn))], labels, probs, [f"c{c}" for c in range(k)])


def _all_intervals(result):
    yield from result.intervals.items()
    for name, per_class in result.class_intervals.items():
        for key, ci in per_class.items():
            yield f"{name}.{key}", ci


def _estimates(result):
    """The point estimate each interval belongs to, by the name _all_intervals gives it."""
    values = dict(result.headline())
    for row in result.per_class:
        values.update({f"{row.name}.{key}": getattr(row, key)
                       for key in ("precision", "recall", "specificity", "f1", "auc")})
    return values


@MODEST
@given(k=st.integers(2, 4), drawn=rows, seed=st.integers(0, 2**32 - 1), threshold=st.none() | st.floats(0, 1))
def test_intervals_are_proportions_that_hold_their_estimate(k, drawn, seed, threshold):
    options = {"positive_class": "c0", "threshold": threshold} if k == 2 and threshold is not None else {}
    result = compute_metrics(_predictions(k, drawn), n_bootstrap=200, seed=seed, **options)
    estimates = _estimates(result)
    for name, ci in _all_intervals(result):
        assert ci.level == 0.95, name
        assert (ci.low is None) == (ci.high is None), name
        if name in estimates:
            assert ci.value == pytest.approx(estimates[name], abs=1e-12) if estimates[name] is not None \
                else ci.value is None, (name, ci, estimates[name])
        if ci.low is not None:
            assert ci.value is not None, (name, ci)
            assert 0.0 <= ci.low <= ci.value <= ci.high <= 1.0, (name, ci)
            assert ci.high - ci.low > 1e-9, ("an interval collapsed to a point", name, ci)
    # Wilson's interval of a proportion exists whenever there is something to count, and never
    # collapses to a point (a percentile bootstrap says "100% (100-100%)" at 15 of 15).
    ci = result.intervals["accuracy"]
    assert ci.low < ci.high and ci.low <= result.accuracy <= ci.high
    for row in result.per_class:
        ci = result.class_intervals[row.name]["recall"]
        if row.support:
            assert ci.low < ci.high and ci.low <= row.recall <= ci.high, (row.name, row.recall, ci)
        else:
            assert ci.low is None


# ----- cache keys --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# "format" is left out here: see test_a_component_named_format_still_changes_the_key.
names = st.text(min_size=1, max_size=10).filter(lambda name: name != "format")
components = st.dictionaries(names, json_values, min_size=1, max_size=6)


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@MODEST
@given(parts=components, data=st.data())
def test_any_changed_component_changes_the_cache_key(parts, data):
    key = cache_key(parts)
    assert key == cache_key(dict(reversed(list(parts.items()))))  # the order of the components does not matter
    name = data.draw(st.sampled_from(sorted(parts)))
    new_value = data.draw(json_values.filter(lambda value: not _same_json(value, parts[name])))
    assert cache_key({**parts, name: new_value}) != key
    extra = data.draw(names.filter(lambda n: n not in parts))
    assert cache_key({**parts, extra: data.draw(json_values)}) != key
    assert cache_key({n: v for n, v in parts.items() if n != name}) != key


def test_a_component_named_format_still_changes_the_key():
    assert cache_key({"format": 2}) != cache_key({})


# ----- events ------------------------------------------------------------------------------------

def _strategy(tp) -> st.SearchStrategy:
    """Values of a field's type as JSON can carry them (no NaN: it never equals itself)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_strategy(arg) for arg in args])
    if tp is type(None):
        return st.none()
    if tp is typing.Any:
        return json_values
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=4)
    simple = {str: st.text(max_size=20), bool: st.booleans(), int: st.integers(),
              float: st.floats(allow_nan=False)}
    if tp in simple:
        return simple[tp]
    raise TypeError(f"no strategy for event field type {tp!r}: extend _strategy")


def _event_strategy(cls) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda values: cls(**values))


any_event = st.one_of([_event_strategy(cls) for cls in events.EVENT_TYPES.values()])


@MODEST
@given(event=any_event)
def test_every_event_survives_a_json_line(event):
    line = json.dumps(event.to_dict(), allow_nan=True)  # as JsonlLogger writes it
    assert "\n" not in line
    again = events.event_from_dict(json.loads(line))
    assert again == event and type(again) is type(event) and again.kind == event.kind


def test_every_event_type_is_known_by_its_kind():
    assert all(kind == cls.kind for kind, cls in events.EVENT_TYPES.items())
    assert len(events.EVENT_TYPES) == len({cls for cls in events.EVENT_TYPES.values()})
