"""Tests of `count_classes` on `tf.data` against `np.bincount` / NumPy
column sums.

The in-graph `tf.data` path works under every Keras backend (TensorFlow is
always installed), so this module runs in the main (TensorFlow) process
only; the other sources, counted with NumPy, are tested on every backend in
`test_counting_sources.py`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cbloss import count_classes
from keras_cbloss import counting as counting_module

C = 7


def _labels(n=53, num_classes=C, seed=0):
    # Class 0 absent, class C-1 present: inference and padding both matter.
    rng = np.random.default_rng(seed)
    y = rng.integers(1, num_classes, n)
    y[0] = num_classes - 1
    return y


def _multi_hot(n=53, num_classes=C, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.random((n, num_classes)) < 0.3).astype("float32")


def _dataset(y, batch, w=None, x=True, drop_remainder=False):
    n = len(y)
    parts = []
    if x:
        parts.append(np.zeros((n, 3), "float32"))
    parts.append(y)
    if w is not None:
        parts.append(w)
    ds = tf.data.Dataset.from_tensor_slices(
        tuple(parts) if len(parts) > 1 else parts[0]
    )
    if batch:
        ds = ds.batch(batch, drop_remainder=drop_remainder)
    return ds


SPARSE_FORMS = {
    "ids": lambda y: y,
    "ids_int32": lambda y: y.astype("int32"),
    "ids_uint8": lambda y: y.astype("uint8"),
    "ids_float": lambda y: y.astype("float32"),
    "ids_column": lambda y: y[:, None],  # [B, 1]
}


@pytest.mark.parametrize("form", sorted(SPARSE_FORMS))
@pytest.mark.parametrize("batch", [None, 1, 8, 53, 100])
@pytest.mark.parametrize("with_x", [True, False])
def test_sparse_counts_match_bincount(form, batch, with_x):
    y = _labels()
    ds = _dataset(SPARSE_FORMS[form](y), batch, x=with_x)
    counts = count_classes(ds, C, verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=C))
    assert counts.dtype == np.int64 and counts.shape == (C,)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
@pytest.mark.parametrize("batch", [None, 1, 8, 100])
@pytest.mark.parametrize("multi", [False, True])
def test_dense_counts_are_column_sums(dtype, batch, multi):
    if batch is None and dtype == "int64":
        pytest.skip("unbatched integer rows read as class ids (warns; below)")
    y = _multi_hot() if multi else np.eye(C)[_labels()]
    ds = _dataset(y.astype(dtype), batch)
    counts = count_classes(ds, verbose=0)
    np.testing.assert_array_equal(counts, y.sum(0).astype(np.int64))
    assert counts.dtype == np.int64


def test_drop_remainder_batches_of_static_size():
    y = _labels(n=64)
    for batch in (4, 16):
        ds = _dataset(y, batch, drop_remainder=True)
        assert ds.element_spec[1].shape == (batch,)
        np.testing.assert_array_equal(
            count_classes(ds, C, verbose=0), np.bincount(y, minlength=C)
        )


def test_many_groups_and_a_partial_last_batch():
    # Enough labels for several regrouped blocks (and a ragged last batch).
    y = np.random.default_rng(3).integers(0, 1000, 200_003)
    ds = tf.data.Dataset.from_tensor_slices(y).batch(256)
    expected = np.bincount(y, minlength=1000)
    np.testing.assert_array_equal(count_classes(ds, 1000, verbose=0), expected)
    np.testing.assert_array_equal(count_classes(ds, verbose=0), expected)
    # With a progress bar the batches are read one by one: same counts.
    np.testing.assert_array_equal(count_classes(ds, 1000, verbose=2), expected)


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_dense_rows_in_several_regrouped_blocks(drop_remainder):
    # 1.5M values: more than one regrouped block of about 2**20.
    y = np.random.default_rng(13).integers(0, 300, 5001)
    ds = (
        tf.data.Dataset.from_tensor_slices(y)
        .batch(256, drop_remainder=drop_remainder)
        .map(lambda ids: tf.one_hot(ids, 300))
    )
    kept = y[: len(y) // 256 * 256] if drop_remainder else y
    np.testing.assert_array_equal(
        count_classes(ds, verbose=0), np.bincount(kept, minlength=300)
    )


def test_num_classes_inference_and_padding():
    y = _labels()
    ds = _dataset(y, 8)
    inferred = count_classes(ds, verbose=0)
    assert inferred.shape == (y.max() + 1,)
    padded = count_classes(ds, 12, verbose=0)
    np.testing.assert_array_equal(padded, np.bincount(y, minlength=12))
    # Dense labels: the width is the number of classes.
    onehot = _dataset(np.eye(9, dtype="float32")[y], 8)
    assert count_classes(onehot, verbose=0).shape == (9,)


def test_labels_near_the_top_class():
    # tf.math.bincount(maxlength=C) drops labels >= C: C - 1 must count and
    # C must raise.
    y = np.array([999, 0, 999, 5])
    ds = tf.data.Dataset.from_tensor_slices(y).batch(2)
    counts = count_classes(ds, 1000, verbose=0)
    assert counts[999] == 2 and counts.sum() == 4
    with pytest.raises(ValueError, match=r"\[0, 999\).*label of 999"):
        count_classes(ds, 999, verbose=0)


def test_label_fn_dict_and_multi_output_labels():
    y = _labels()
    other = _labels(seed=5)
    x = np.zeros((len(y), 2), "float32")
    ds = tf.data.Dataset.from_tensor_slices(
        (x, {"cls": y, "aux": other})
    ).batch(8)
    with pytest.raises(
        ValueError, match=r"keys \['aux', 'cls'\].*lambda x, y: y\['aux'\]"
    ):
        count_classes(ds, verbose=0)
    counts = count_classes(ds, C, label_fn=lambda x, y: y["aux"], verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(other, minlength=C))
    tuple_ds = tf.data.Dataset.from_tensor_slices((x, (y, other))).batch(8)
    counts = count_classes(tuple_ds, C, label_fn=lambda x, y: y[0], verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=C))
    # label_fn also reshapes layouts of other ranks (segmentation masks).
    masks = np.random.default_rng(2).integers(0, 4, (10, 3, 5))
    seg = tf.data.Dataset.from_tensor_slices((masks, masks)).batch(4)
    with pytest.raises(ValueError, match=r"shape \(None, 3, 5\)"):
        count_classes(seg, verbose=0)
    counts = count_classes(
        seg, 4, label_fn=lambda x, y: tf.reshape(y, [-1]), verbose=0
    )
    np.testing.assert_array_equal(counts, np.bincount(masks.ravel(), None, 4))


@pytest.mark.parametrize("batch", [None, 8])
@pytest.mark.parametrize("wshape", ["flat", "column"])
def test_sample_weighted_counts(batch, wshape):
    y = _labels()
    w = np.random.default_rng(4).random(len(y))
    ds = _dataset(y, batch, w=w if wshape == "flat" else w[:, None])
    counts = count_classes(ds, C, sample_weighted=True, verbose=0)
    assert counts.dtype == np.float64
    np.testing.assert_allclose(counts, np.bincount(y, w, C), rtol=1e-12)
    # Unweighted counting ignores the weights of (x, y, w).
    np.testing.assert_array_equal(
        count_classes(ds, C, verbose=0), np.bincount(y, minlength=C)
    )
    dense = _dataset(_multi_hot(), batch, w=w)
    np.testing.assert_allclose(
        count_classes(dense, sample_weighted=True, verbose=0),
        w @ _multi_hot(),
        rtol=1e-6,
    )
    via_fn = count_classes(
        ds,
        C,
        label_fn=lambda x, y, w: (y, w),
        sample_weighted=True,
        verbose=0,
    )
    np.testing.assert_allclose(via_fn, np.bincount(y, w, C), rtol=1e-12)


def test_steps_and_infinite_datasets():
    y = _labels(n=40)
    ds = _dataset(y, 8)
    with pytest.raises(ValueError, match="infinite.*`steps`"):
        count_classes(ds.repeat(), C, verbose=0)
    counts = count_classes(ds.repeat(), C, steps=7, verbose=0)  # 1.4 epochs
    expected = np.bincount(np.concatenate([y, y[:16]]), minlength=C)
    np.testing.assert_array_equal(counts, expected)
    with pytest.warns(UserWarning, match=r"cover only 2 of its 5 elements"):
        counts = count_classes(ds, C, steps=2, verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y[:16], minlength=C))
    with pytest.warns(UserWarning, match="exceeds the dataset's 5 elements"):
        counts = count_classes(ds, C, steps=50, verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=C))


def test_empty_datasets():
    empty = tf.data.Dataset.from_tensor_slices(np.zeros([0], "int64"))
    with pytest.raises(ValueError, match="empty"):
        count_classes(empty, C, verbose=0)
    # Unknown cardinality: found empty while counting.
    filtered = _dataset(_labels(), 8).filter(lambda x, y: False)
    with pytest.raises(ValueError, match="no labels"):
        count_classes(filtered, C, verbose=0)


@pytest.mark.parametrize(
    "labels, num_classes, match",
    [
        (np.array([0, 1, 7]), 7, r"in \[0, 7\).*label of 7"),
        (np.array([0, -3, 1]), 7, r"label of -3"),
        (np.array([0, -3, 1]), None, r"non-negative.*label of -3"),
        (np.array([0.0, 2.5]), 7, r"integer class ids.*label of 2.5"),
        (np.array([0.0, np.nan]), None, r"label of nan"),
        (np.array([1, 2**31]), None, r"label of 2147483648"),
    ],
)
def test_invalid_sparse_labels_name_the_value(labels, num_classes, match):
    ds = tf.data.Dataset.from_tensor_slices(labels).batch(2)
    with pytest.raises(ValueError, match=match):
        count_classes(ds, num_classes, verbose=0)


def test_soft_and_out_of_range_dense_labels():
    soft = np.full((4, 3), 0.1, "float32")
    soft[:, 0] = 0.8  # label smoothing
    ds = tf.data.Dataset.from_tensor_slices(soft).batch(2)
    with pytest.raises(ValueError, match=r"0s and 1s.*value of 0.8.*mixup"):
        count_classes(ds, verbose=0)
    twos = tf.data.Dataset.from_tensor_slices(np.eye(3) * 2).batch(2)
    with pytest.raises(ValueError, match="value of 2"):
        count_classes(twos, verbose=0)
    onehot = tf.data.Dataset.from_tensor_slices(np.eye(3)).batch(2)
    with pytest.raises(ValueError, match=r"3 classes.*num_classes=4"):
        count_classes(onehot, 4)


def test_per_token_ids_read_as_rows_get_the_sparse_advice_first():
    # [B, T] class ids with no -1: a value of 2 means class ids, not an
    # unknown entry, so the advice is `sparse=True` (and not
    # `ignore_class=2`); it is followed.
    ids = np.array([[0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 0, 1]], "int64")
    with pytest.raises(ValueError) as error:
        count_classes(ids, verbose=0)
    message = str(error.value)
    assert "value of 2. If these are class ids" in message, message
    assert "ignore_class" not in message and "mixup" not in message
    np.testing.assert_array_equal(
        count_classes(ids, sparse=True, verbose=0),
        np.bincount(ids.ravel(), minlength=3),
    )
    # Ids padded with -1 look like multi-hot rows with unknown entries: the
    # message gives each reading its complete fix, and the one for padded
    # ids, followed, counts the ids.
    padded = np.array([[0, 1, 1, -1], [1, 0, -1, -1], [1, 1, 1, 0]], "int64")
    with pytest.raises(ValueError) as error:
        count_classes(padded, verbose=0)
    message = str(error.value)
    assert "multi-hot rows (e.g. -1 in multi-task targets), pass " in message
    fix = "padded with -1 (e.g. per-token ids [B, T]), pass `sparse=True, "
    assert fix + "ignore_class=-1`." in message, message
    np.testing.assert_array_equal(
        count_classes(padded, sparse=True, ignore_class=-1, verbose=0),
        np.bincount(padded[padded >= 0], minlength=2),
    )


@pytest.mark.parametrize(
    "value, dtype, shown",
    [
        (np.inf, "float32", "inf"),
        (-np.inf, "float32", "-inf"),
        (np.nan, "float32", "nan"),
        (1e-30, "float32", "1e-30"),
        (np.float32(1 - 2**-24), "float32", "0.9999999"),
        (-1.0, "float16", "-1"),
        (2, "int32", "2"),
        (255, "uint8", "255"),
        (65536, "int32", "65536"),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_every_dense_value_other_than_0_and_1_is_rejected(
    value, dtype, shown, weighted
):
    rows = np.eye(4)[[0, 1, 2, 3, 1, 0]]
    rows[4, 2] = value
    w = np.ones(6) if weighted else None
    ds = _dataset(rows.astype(dtype), 3, w=w)
    with pytest.raises(ValueError, match=rf"0s and 1s.*value of {shown}"):
        count_classes(ds, sparse=False, sample_weighted=weighted, verbose=0)


def test_invalid_sample_weights():
    y = np.array([0, 1, 2, 1])
    bad = _dataset(y, 2, w=np.array([1.0, -0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"sample weight of -0.5"):
        count_classes(bad, 3, sample_weighted=True, verbose=0)
    nan = _dataset(y, 2, w=np.array([1.0, 1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"sample weight of nan"):
        count_classes(nan, 3, sample_weighted=True, verbose=0)
    x = np.zeros((4, 1), "float32")
    per_class = tf.data.Dataset.from_tensor_slices(
        (x, y, np.ones((4, 3)))
    ).batch(2)
    with pytest.raises(ValueError, match=r"6 weights for 2 labelled"):
        count_classes(per_class, 3, sample_weighted=True, verbose=0)
    with pytest.raises(ValueError, match="sample_weighted=True.*`\\(x, y\\)`"):
        count_classes(_dataset(y, 2), 3, sample_weighted=True)
    with pytest.raises(ValueError, match="labels only"):
        count_classes(_dataset(y, 2, x=False), 3, sample_weighted=True)
    with pytest.raises(ValueError, match=r"return `\(labels, sample_weight\)`"):
        count_classes(
            _dataset(y, 2),
            3,
            label_fn=lambda x, y: y,
            sample_weighted=True,
        )


def test_shapes_and_types_that_cannot_be_counted():
    x = np.zeros((6, 2), "float32")
    cube = tf.data.Dataset.from_tensor_slices(np.zeros((6, 2, 3, 4))).batch(2)
    with pytest.raises(ValueError, match=r"shape \(None, 2, 3, 4\).*sparse"):
        count_classes(cube, verbose=0)
    # The advice, followed: class ids of any shape, or rows [..., C].
    np.testing.assert_array_equal(count_classes(cube, sparse=True), [144])
    np.testing.assert_array_equal(count_classes(cube, sparse=False), [0] * 4)
    rows = np.eye(3, dtype="float32")[[0, 2, 2, 1]]
    unknown = tf.data.Dataset.from_generator(
        lambda: iter([rows]),
        output_signature=tf.TensorSpec([None, None], tf.float32),
    )
    with pytest.raises(ValueError, match=r"shape \(None, None\).*ensure_shape"):
        count_classes(unknown, verbose=0)
    # The advice for one-hot rows, followed.
    counts = count_classes(
        unknown, label_fn=lambda y: tf.ensure_shape(y, [None, 3]), verbose=0
    )
    np.testing.assert_array_equal(counts, rows.sum(0))
    names = ["cat", "dog", "cat", "eel", "cat", "dog"]
    strings = tf.data.Dataset.from_tensor_slices((x, names)).batch(4)
    with pytest.raises(
        TypeError,
        match=r"StringLookup\(vocabulary=class_names, "
        r"num_oov_indices=0\)",
    ):
        count_classes(strings, verbose=0)
    # The advice, followed.
    lookup = keras.layers.StringLookup(
        vocabulary=["cat", "dog", "eel"], num_oov_indices=0
    )
    counts = count_classes(
        strings, 3, label_fn=lambda x, y: lookup(y), verbose=0
    )
    np.testing.assert_array_equal(counts, [3, 2, 1])
    ragged = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([[0, 1], [2], [1, 1, 0]])
    )
    with pytest.raises(TypeError, match="ragged"):
        count_classes(ragged, verbose=0)
    # The advice, followed, for unbatched and batched lists of class ids.
    for ds, label_fn in [
        (ragged, lambda y: y),
        (ragged.batch(2), lambda y: y.flat_values),
    ]:
        with pytest.raises(TypeError, match="ragged"):
            count_classes(ds, verbose=0)
        np.testing.assert_array_equal(
            count_classes(ds, label_fn=label_fn, verbose=0), [2, 3, 1]
        )
    with pytest.raises(ValueError, match=r"element_spec=\(.*\)"):
        count_classes(
            tf.data.Dataset.from_tensor_slices((x, x, x, x)), verbose=0
        )
    with pytest.raises(TypeError, match="as `fit` takes it.*dataset=3"):
        count_classes(3)
    features = tf.data.Dataset.from_tensor_slices(
        {"a": x, "b": np.array([0, 2, 2, 1, 2, 2])}
    )
    with pytest.raises(ValueError, match=r"dicts \(keys \['a', 'b'\]\)"):
        count_classes(features, verbose=0)
    # The advice, followed (with the key that holds the labels).
    np.testing.assert_array_equal(
        count_classes(features, label_fn=lambda e: e["b"], verbose=0),
        [1, 1, 4],
    )


def test_advice_for_unknown_rank_and_misread_ids_works():
    data = np.array([[0, 2], [1, 1]])
    unknown = tf.data.Dataset.from_generator(
        lambda: iter([data]), output_signature=tf.TensorSpec(None, tf.int64)
    )
    with pytest.raises(ValueError, match="unknown rank.*sparse=True"):
        count_classes(unknown, verbose=0)
    np.testing.assert_array_equal(
        count_classes(unknown, sparse=True, verbose=0), [1, 2, 1]
    )
    # Per-token ids [B, 8] with 5 classes, once read as rows of width 8.
    tokens = np.random.default_rng(12).integers(0, 5, (10, 8))
    ds = _dataset(tokens, 4)
    with pytest.raises(
        ValueError, match=r"8 classes.*num_classes=5.*sparse=True"
    ):
        count_classes(ds, 5, verbose=0)
    np.testing.assert_array_equal(
        count_classes(ds, 5, sparse=True, verbose=0),
        np.bincount(tokens.ravel(), minlength=5),
    )
    # Float ids [B, 3], once read as (invalid) one-hot rows.
    floats = _dataset(tokens[:, :3].astype("float32"), 4)
    with pytest.raises(ValueError, match=r"0s and 1s.*sparse=True"):
        count_classes(floats, verbose=0)
    np.testing.assert_array_equal(
        count_classes(floats, 5, sparse=True, verbose=0),
        np.bincount(tokens[:, :3].ravel(), minlength=5),
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 2.0}, TypeError, "num_classes"),
        ({"num_classes": True}, TypeError, "num_classes"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": "all"}, TypeError, "steps"),
        ({"verbose": 3}, ValueError, "verbose"),
        ({"verbose": "yes"}, ValueError, "verbose"),
        ({"label_fn": "y"}, TypeError, "label_fn"),
        ({"sample_weighted": 1}, TypeError, "sample_weighted"),
        ({"sparse": "yes"}, TypeError, "sparse"),
        ({"sparse": 1}, TypeError, "sparse"),
        ({"ignore_class": 2.5}, TypeError, "ignore_class"),
        ({"ignore_class": True}, TypeError, "ignore_class"),
    ],
)
def test_argument_validation(kwargs, error, match):
    ds = tf.data.Dataset.from_tensor_slices(np.array([0, 1]))
    with pytest.raises(error, match=match):
        count_classes(ds, **kwargs)


def test_ambiguous_unbatched_integer_rows_warn():
    # An unbatched int multi-hot row [C] looks like a batch of C class ids.
    rows = (np.random.default_rng(0).random((5, 6)) < 0.5).astype("int64")
    ds = tf.data.Dataset.from_tensor_slices(rows)
    with pytest.warns(UserWarning, match="only classes 0 and 1.*sparse=False"):
        count_classes(ds, 6, verbose=0)
    # The documented fixes: `sparse=False`, float labels, or batching.
    np.testing.assert_array_equal(
        count_classes(ds, 6, sparse=False, verbose=0), rows.sum(0)
    )
    fixed = count_classes(ds.map(lambda r: tf.cast(r, "float32")), verbose=0)
    np.testing.assert_array_equal(fixed, rows.sum(0))
    np.testing.assert_array_equal(
        count_classes(ds.batch(2), verbose=0), rows.sum(0)
    )


def test_progress_bar(capsys, monkeypatch):
    y = _labels(n=40)
    ds = _dataset(y, 8)
    count_classes(ds, C, verbose=0)
    assert capsys.readouterr().out == ""
    # "auto": a bar once the count has run for `_AUTO_BAR_AFTER_S` (set
    # here, so that the machine's load does not decide).
    monkeypatch.setattr(counting_module, "_AUTO_BAR_AFTER_S", 1e9)
    count_classes(ds, C)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(counting_module, "_AUTO_BAR_AFTER_S", -1.0)
    count_classes(ds, C)
    assert "5/5" in capsys.readouterr().out
    count_classes(ds, C, verbose=1)
    assert "5/5" in capsys.readouterr().out
    count_classes(ds, C, verbose=2)
    out = capsys.readouterr().out
    assert out.count("5/5") == 1 and "\r" not in out


# Binary one-unit heads, ignored labels, per-token and per-pixel ids.


@pytest.mark.parametrize("dtype", ["int64", "int32", "float32", "bool"])
@pytest.mark.parametrize("column", [False, True])
@pytest.mark.parametrize("batch", [None, 16])
def test_binary_labels_count_as_two_classes(dtype, column, batch):
    # A `Dense(1)` head: 0/1 labels [B] or [B, 1] are {0: neg, 1: pos}.
    y = (np.random.default_rng(6).random(53) < 0.1).astype("int64")
    labels = y[:, None] if column else y
    ds = _dataset(labels.astype(dtype), batch)
    counts = count_classes(ds, num_classes=2, verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=2))


def test_soft_binary_labels_are_rejected():
    soft = np.array([0.0, 0.9, 1.0, 0.1], "float32")
    ds = _dataset(soft, 2)
    with pytest.raises(ValueError, match=r"integer class ids.*label of 0.9"):
        count_classes(ds, 2, verbose=0)


def _masks(n=6, h=5, w=4, num_classes=C, void=255, seed=7):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, num_classes, (n, h, w))
    masks[rng.random(masks.shape) < 0.2] = void
    return masks


def _bincount_kept(labels, num_classes, ignore):
    kept = labels[labels != ignore]
    return np.bincount(kept.ravel(), minlength=num_classes)


@pytest.mark.parametrize("dtype", ["int64", "uint8", "float32"])
@pytest.mark.parametrize("batch", [None, 4])
def test_per_pixel_masks_with_void_pixels(dtype, batch):
    masks = _masks()
    ds = _dataset(masks.astype(dtype), batch)
    expected = _bincount_kept(masks, C, 255)
    counts = count_classes(ds, C, sparse=True, ignore_class=255, verbose=0)
    np.testing.assert_array_equal(counts, expected)
    # Inferred `num_classes` ignores the void label too.
    inferred = count_classes(ds, sparse=True, ignore_class=255, verbose=0)
    top = masks[masks < 255].max()
    np.testing.assert_array_equal(inferred, expected[: top + 1])


def test_an_unignored_void_label_names_the_fix():
    masks = _masks()
    ds = _dataset(masks, 4)
    with pytest.raises(ValueError, match=r"label of 255.*`ignore_class`"):
        count_classes(ds, C, sparse=True, verbose=0)
    counts = count_classes(ds, C, sparse=True, ignore_class=255, verbose=0)
    np.testing.assert_array_equal(counts, _bincount_kept(masks, C, 255))


def test_ignore_class_inside_the_class_range_and_unrepresentable():
    y = _labels()
    ds = _dataset(y, 8)
    counts = count_classes(ds, C, ignore_class=3, verbose=0)
    np.testing.assert_array_equal(counts, _bincount_kept(y, C, 3))
    # uint8 labels never equal -1: nothing is skipped.
    small = _dataset(y.astype("uint8"), 8)
    np.testing.assert_array_equal(
        count_classes(small, C, ignore_class=-1, verbose=0),
        np.bincount(y, minlength=C),
    )
    # In one-hot rows, zeros marked unknown change nothing: the counts are
    # the known positives.
    onehot = _dataset(np.eye(C, dtype="float32")[y], 8)
    np.testing.assert_array_equal(
        count_classes(onehot, ignore_class=0, verbose=0),
        np.bincount(y, minlength=C),
    )
    # Everything ignored: nothing to count.
    with pytest.raises(ValueError, match="no labels.*ignore_class=5"):
        count_classes(_dataset(np.full(4, 5), 2), C, ignore_class=5)


def _unknown_entries(n=53, num_classes=C, seed=14):
    """Multi-hot targets with unknown entries marked -1 (multi-task data)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, num_classes)) < 0.4).astype("float32")
    targets[rng.random((n, num_classes)) < 0.25] = -1
    return targets


@pytest.mark.parametrize("dtype", ["float32", "int64", "int8"])
@pytest.mark.parametrize("batch", [None, 8])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_hot_targets_with_unknown_entries(dtype, batch, weighted):
    targets = _unknown_entries()
    w = np.random.default_rng(15).random(len(targets)) if weighted else None
    ds = _dataset(targets.astype(dtype), batch, w=w)
    counts = count_classes(
        ds,
        ignore_class=-1,
        sparse=False,
        sample_weighted=weighted,
        verbose=0,
    )
    # A class's count: its known positives.
    positives = (targets == 1).astype(np.float64)
    expected = positives.sum(0) if w is None else w @ positives
    np.testing.assert_allclose(counts, expected, rtol=1e-12)


def test_unknown_entries_without_ignore_class_name_the_fix():
    targets = _unknown_entries()
    ds = _dataset(targets, 8)
    with pytest.raises(
        ValueError,
        match=r"0s and 1s.*value of -1\. If such entries mark "
        r"unknown labels.*pass `ignore_class=-1`",
    ):
        count_classes(ds, verbose=0)
    # The advice, followed.
    np.testing.assert_array_equal(
        count_classes(ds, ignore_class=-1, verbose=0),
        (targets == 1).sum(0),
    )
    # Other values stay errors, NaN too; rows all unknown carry no label.
    for value, shown in [(2, "2"), (0.5, "0.5"), (np.nan, "nan")]:
        bad = targets.copy()
        bad[7, 1] = value
        with pytest.raises(
            ValueError, match=rf"ignore_class=-1` are unknown.*value of {shown}"
        ):
            count_classes(_dataset(bad, 8), ignore_class=-1, verbose=0)
    unknown = tf.data.Dataset.from_tensor_slices(-np.ones((4, 3))).batch(2)
    with pytest.raises(ValueError, match=r"no labels.*ignore_class=-1"):
        count_classes(unknown, ignore_class=-1, verbose=0)


def test_string_lookup_default_shifts_ids():
    # Why every message says `num_oov_indices=0`: with the default of 1, id
    # 0 is the out-of-vocabulary token and every class id moves up by one.
    names = tf.constant(["cat", "dog", "cat", "eel"])
    ds = tf.data.Dataset.from_tensor_slices(names).batch(2)
    shifted = keras.layers.StringLookup(vocabulary=["cat", "dog", "eel"])
    with pytest.raises(ValueError, match=r"\[0, 3\).*label of 3"):
        count_classes(ds.map(shifted), 3, verbose=0)
    np.testing.assert_array_equal(
        count_classes(ds.map(shifted), verbose=0), [0, 2, 1, 1]
    )
    lookup = keras.layers.StringLookup(
        vocabulary=["cat", "dog", "eel"], num_oov_indices=0
    )
    np.testing.assert_array_equal(
        count_classes(ds.map(lookup), 3, verbose=0), [2, 1, 1]
    )


def _token_sequences(n=11, num_classes=C, seed=8):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, num_classes, rng.integers(1, 9)) for _ in range(n)]


def _padded(sequences, batch=3, pad=-1):
    ds = tf.data.Dataset.from_generator(
        lambda: iter(sequences),
        output_signature=tf.TensorSpec([None], tf.int64),
    )
    return ds.map(lambda y: (tf.zeros_like(y, tf.float32), y)).padded_batch(
        batch, padding_values=(0.0, tf.constant(pad, tf.int64))
    )


def test_per_token_ids_from_padded_batch():
    sequences = _token_sequences()
    ds = _padded(sequences)
    assert ds.element_spec[1].shape.as_list() == [None, None]
    expected = np.bincount(np.concatenate(sequences), minlength=C)
    # The error's advice for class ids with a dynamic length, followed.
    with pytest.raises(ValueError, match=r"unknown.*pass `sparse=True`"):
        count_classes(ds, C, verbose=0)
    with pytest.raises(ValueError, match=r"label of -1.*`ignore_class`"):
        count_classes(ds, C, sparse=True, verbose=0)
    counts = count_classes(ds, C, sparse=True, ignore_class=-1, verbose=0)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(
        count_classes(ds, C, sparse=True, ignore_class=-1, verbose=2),
        expected,
    )


def test_per_token_ids_of_fixed_length_and_one_hot_tokens():
    tokens = np.random.default_rng(9).integers(0, C, (20, 6))
    ds = _dataset(tokens, 4)
    expected = np.bincount(tokens.ravel(), minlength=C)
    np.testing.assert_array_equal(
        count_classes(ds, C, sparse=True, verbose=0), expected
    )
    onehot = _dataset(np.eye(C, dtype="float32")[tokens], 4)
    np.testing.assert_array_equal(
        count_classes(onehot, sparse=False, verbose=0), expected
    )
    with pytest.raises(ValueError, match=r"scalar labels.*sparse=True"):
        count_classes(_dataset(tokens[:, 0], None), sparse=False)


@pytest.mark.parametrize("wshape", ["sample", "column", "token"])
def test_sample_weighted_per_token_counts(wshape):
    tokens = np.random.default_rng(10).integers(0, C, (12, 5))
    tokens[:, -1] = -1  # padding
    w = np.random.default_rng(11).random(12)
    per_token = np.repeat(w[:, None], 5, axis=1)
    weights = {"sample": w, "column": w[:, None], "token": per_token}[wshape]
    ds = _dataset(tokens, 4, w=weights)
    counts = count_classes(
        ds, C, sparse=True, ignore_class=-1, sample_weighted=True, verbose=0
    )
    kept = tokens >= 0
    expected = np.bincount(tokens[kept], per_token[kept], C)
    np.testing.assert_allclose(counts, expected, rtol=1e-12)
    bad = _dataset(tokens, 4, w=np.ones((12, 2)))
    with pytest.raises(ValueError, match=r"8 weights for 20 labelled"):
        count_classes(
            bad,
            C,
            sparse=True,
            ignore_class=-1,
            sample_weighted=True,
            verbose=0,
        )
