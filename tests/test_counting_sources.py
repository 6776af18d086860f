"""Counting from every source `fit` takes, on every backend.

`count_classes` and `ClassCounter` read NumPy labels, `(x, y)` and
`(x, y, sample_weight)` arrays, backend tensors, a `keras.utils.PyDataset`,
a PyTorch `DataLoader`, grain datasets and loaders, lists of batches and
functions returning fresh iterators, and count them with NumPy. Expected
values are independent NumPy computations (`np.bincount`, column sums of
`t == 1`). Backend-agnostic: `tests/backend_runs.py` reruns this module
under JAX and PyTorch (the `tf.data` path is tested in `test_counting.py`).
Under JAX, neither importing the package nor counting imports TensorFlow
(a JAX child process, tests/children.py).
"""

import importlib.util
import math

import children
import keras
import numpy as np
import pytest
import reference

from keras_cbloss import CBSigmoidLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import ClassCounter
from keras_cbloss import count_classes
from keras_cbloss import counting as counting_module

BACKEND = keras.backend.backend()
C = 5
N = 23
BATCH = 4
RNG = np.random.default_rng(0)
Y = RNG.integers(1, C, N)  # class 0 absent: num_classes inference matters
Y[0] = C - 1
X = RNG.normal(size=(N, 3)).astype("float32")
W = RNG.random(N).astype("float32").astype("float64")  # exact in float32
# Multi-hot targets with unknown entries (-1), as multi-task data marks them.
T = (RNG.random((N, C)) < 0.4).astype("float32")
T[RNG.random((N, C)) < 0.25] = -1


def known_positives(t, w=None):
    """A class's count: its known positives (entries equal to 1)."""
    positives = (t == 1).astype(np.float64)
    return positives.sum(0) if w is None else w @ positives


# The sources, each holding `arrays` in batches of BATCH (arrays: whole).


class ArrayBatches(keras.utils.PyDataset):
    """A `PyDataset` of `arrays` in batches; `length=None`: infinite."""

    def __init__(self, arrays, length=-1):
        super().__init__()
        self.arrays = arrays
        full = math.ceil(len(arrays[0]) / BATCH)
        self.length = full if length == -1 else length
        self.full = full

    @property
    def num_batches(self):
        return self.length

    def __getitem__(self, index):
        part = slice(
            (index % self.full) * BATCH, (index % self.full + 1) * BATCH
        )
        items = tuple(a[part] for a in self.arrays)
        return items if len(items) > 1 else items[0]


def batch_list(arrays):
    items = [
        tuple(a[i : i + BATCH] for a in arrays) for i in range(0, N, BATCH)
    ]
    return [b if len(b) > 1 else b[0] for b in items]


def torch_loader(arrays, batch_size=BATCH):
    if BACKEND == "jax":  # importing torch there costs seconds, tests nothing
        pytest.skip("DataLoaders: under TensorFlow and PyTorch")
    torch = pytest.importorskip("torch")

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return len(arrays[0])

        def __getitem__(self, i):
            items = tuple(torch.as_tensor(a[i]) for a in arrays)
            return items if len(items) > 1 else items[0]

    return torch.utils.data.DataLoader(Samples(), batch_size=batch_size)


def grain_dataset(arrays):
    if BACKEND == "torch":
        pytest.skip("grain: under TensorFlow and JAX")
    grain = pytest.importorskip("grain")
    samples = [
        tuple(a[i] for a in arrays) if len(arrays) > 1 else arrays[0][i]
        for i in range(len(arrays[0]))
    ]
    return grain.MapDataset.source(samples).batch(BATCH)


SOURCES = {
    "arrays": lambda arrays: arrays if len(arrays) > 1 else arrays[0],
    "tensors": lambda arrays: (
        tuple(keras.ops.convert_to_tensor(a) for a in arrays)
        if len(arrays) > 1
        else keras.ops.convert_to_tensor(arrays[0])
    ),
    "list": batch_list,
    "callable": lambda arrays: lambda: iter(batch_list(arrays)),
    "pydataset": ArrayBatches,
    "torch": torch_loader,
    "grain": grain_dataset,
}


def source(kind, *arrays):
    return SOURCES[kind](arrays)


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("with_x", [True, False])
def test_class_ids_from_every_source(kind, with_x):
    arrays = (X, Y) if with_x else (Y,)
    expected = np.bincount(Y, minlength=C)
    counts = count_classes(source(kind, *arrays), C, verbose=0)
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.int64
    # Inferred `num_classes`: up to the largest label.
    inferred = count_classes(source(kind, *arrays), verbose=0)
    np.testing.assert_array_equal(inferred, expected[: Y.max() + 1])
    # Float ids [B, 1].
    column = (X, Y[:, None].astype("float32"))[-len(arrays) :]
    np.testing.assert_array_equal(
        count_classes(source(kind, *column), C, verbose=0), expected
    )


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_sample_weighted_counts_from_every_source(kind):
    counts = count_classes(
        source(kind, X, Y, W), C, sample_weighted=True, verbose=0
    )
    assert counts.dtype == np.float64
    np.testing.assert_allclose(counts, np.bincount(Y, W, C), rtol=1e-12)
    # The weights of (x, y, w) are ignored when not asked for.
    np.testing.assert_array_equal(
        count_classes(source(kind, X, Y, W), C, verbose=0),
        np.bincount(Y, minlength=C),
    )


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_multi_hot_targets_with_unknown_entries(kind):
    counts = count_classes(source(kind, X, T), ignore_class=-1, verbose=0)
    np.testing.assert_array_equal(counts, known_positives(T))
    weighted = count_classes(
        source(kind, X, T, W),
        ignore_class=-1,
        sample_weighted=True,
        verbose=0,
    )
    np.testing.assert_allclose(weighted, known_positives(T, W), rtol=1e-12)
    # Without `ignore_class`, -1 is an invalid target; the advice, followed.
    with pytest.raises(
        ValueError,
        match=r"0s and 1s.*value of -1\. If such entries mark "
        r"unknown labels.*pass `ignore_class=-1`",
    ):
        count_classes(source(kind, X, T), verbose=0)
    # Values other than 0, 1 and the ignored one stay errors (as in the
    # losses).
    bad = T.copy()
    bad[5, 2] = 2
    with pytest.raises(
        ValueError, match=r"`ignore_class=-1` are unknown.*value of 2"
    ):
        count_classes(source(kind, X, bad), ignore_class=-1, verbose=0)


def test_multi_hot_rows_without_unknown_entries_and_all_unknown_rows():
    rows = np.eye(C)[Y]
    np.testing.assert_array_equal(
        count_classes(rows), np.bincount(Y, minlength=C)
    )
    np.testing.assert_array_equal(
        count_classes(rows.astype(bool), sparse=False), np.bincount(Y, None, C)
    )
    # Rows whose entries are all unknown carry no label.
    with pytest.raises(ValueError, match=r"no labels.*ignore_class=-1"):
        count_classes(-np.ones((4, 3)), ignore_class=-1)
    # uint8 targets cannot hold -1: nothing is skipped, and 255 is invalid.
    with pytest.raises(ValueError, match="value of 255"):
        count_classes(np.where(T < 0, 255, T).astype("uint8"), ignore_class=-1)


@pytest.mark.parametrize("kind", ["arrays", "pydataset", "torch"])
@pytest.mark.parametrize("column", [False, True])
def test_one_unit_binary_labels_are_two_classes(kind, column):
    y = (Y == 4).astype("float32")
    labels = y[:, None] if column else y
    counts = count_classes(source(kind, X, labels), 2, verbose=0)
    np.testing.assert_array_equal(counts, np.bincount(y.astype(int), None, 2))


@pytest.mark.parametrize("kind", ["arrays", "list", "torch"])
def test_per_token_ids_with_padding_and_void_pixels(kind):
    tokens = RNG.integers(0, C, (N, 6))
    tokens[:, 4:] = -1  # padding
    expected = np.bincount(tokens[tokens >= 0], minlength=C)
    with pytest.raises(ValueError, match=r"label of -1.*`ignore_class`"):
        count_classes(source(kind, X, tokens), C, sparse=True, verbose=0)
    counts = count_classes(
        source(kind, X, tokens), C, sparse=True, ignore_class=-1, verbose=0
    )
    np.testing.assert_array_equal(counts, expected)
    # Per-sample weights [B] repeat over the tokens of each sample.
    weighted = count_classes(
        source(kind, X, tokens, W),
        C,
        sparse=True,
        ignore_class=-1,
        sample_weighted=True,
        verbose=0,
    )
    per_token = np.repeat(W[:, None], 6, axis=1)
    np.testing.assert_allclose(
        weighted, np.bincount(tokens[tokens >= 0], per_token[tokens >= 0], C)
    )
    masks = RNG.integers(0, C, (N, 3, 2)).astype("uint8")
    masks[0, 0, 0] = 255
    np.testing.assert_array_equal(
        count_classes(
            source(kind, masks), C, sparse=True, ignore_class=255, verbose=0
        ),
        np.bincount(masks[masks != 255], minlength=C),
    )


def test_label_fn_dict_labels_and_structures():
    labels = {"cls": Y, "aux": Y[::-1]}
    batches = [
        (X[i : i + BATCH], {k: v[i : i + BATCH] for k, v in labels.items()})
        for i in range(0, N, BATCH)
    ]
    with pytest.raises(
        ValueError, match=r"keys \['aux', 'cls'\].*lambda x, y: y\['aux'\]"
    ):
        count_classes(batches, verbose=0)
    # The advice, followed.
    counts = count_classes(batches, C, label_fn=lambda x, y: y["aux"])
    np.testing.assert_array_equal(counts, np.bincount(Y[::-1], minlength=C))
    # Arrays too: label_fn sees the whole arrays.
    counts = count_classes((X, labels), C, label_fn=lambda x, y: y["cls"])
    np.testing.assert_array_equal(counts, np.bincount(Y, minlength=C))
    # Weights from label_fn.
    counts = count_classes(
        (X, Y, W),
        C,
        label_fn=lambda x, y, w: (y, 2 * w),
        sample_weighted=True,
    )
    np.testing.assert_allclose(counts, np.bincount(Y, 2 * W, C))
    with pytest.raises(ValueError, match=r"return `\(labels, sample_weight"):
        count_classes((X, Y), label_fn=lambda x, y: y, sample_weighted=True)
    with pytest.raises(ValueError, match=r"dicts \(keys \['x', 'y'\]\)"):
        count_classes([{"x": X, "y": Y}])
    with pytest.raises(ValueError, match=r"Expected `\(x, y\)`.*a batch \("):
        count_classes([(X, X, Y, W)])
    with pytest.raises(ValueError, match=r"`sample_weighted=True`.*`\(x, y\)`"):
        count_classes((X, Y), sample_weighted=True)
    with pytest.raises(ValueError, match="labels only"):
        count_classes(Y, sample_weighted=True)


def test_python_lists_of_numbers_are_labels():
    np.testing.assert_array_equal(count_classes([0, 2, 2, 1]), [1, 1, 2])
    np.testing.assert_array_equal(count_classes([[0, 2], [2, 1, 2]]), [1, 1, 3])


def test_ragged_batches_name_the_fix():
    batches = [(X[:2], [[0, 1], [2]]), (X[2:4], [[1, 1, 0], [3]])]
    with pytest.raises(TypeError, match=r"dense tensor.*np\.concatenate"):
        count_classes(batches)
    # The advice, followed.
    counts = count_classes(batches, label_fn=lambda x, y: np.concatenate(y))
    np.testing.assert_array_equal(counts, [2, 3, 1, 1])


def test_string_labels_follow_the_string_lookup_advice():
    if BACKEND != "tensorflow":
        # StringLookup imports TensorFlow on every backend (seconds).
        pytest.skip("run once, from the TensorFlow session")
    class_names = ["cat", "dog", "eel"]
    names = np.array(["cat", "dog", "cat", "eel", "cat", "dog"])
    with pytest.raises(
        TypeError,
        match=r"dtype string.*StringLookup\(vocabulary="
        r"class_names, num_oov_indices=0\)",
    ):
        count_classes(names)
    # The advice exactly as written.
    lookup = keras.layers.StringLookup(
        vocabulary=class_names, num_oov_indices=0
    )
    np.testing.assert_array_equal(count_classes(lookup(names), 3), [3, 2, 1])
    np.testing.assert_array_equal(
        count_classes([(X[:6], lookup(names))]), [3, 2, 1]
    )
    # Why `num_oov_indices=0`: the default shifts every id by one.
    shifted = keras.layers.StringLookup(vocabulary=class_names)
    with pytest.raises(ValueError, match=r"\[0, 3\).*label of 3"):
        count_classes(shifted(names), 3)
    np.testing.assert_array_equal(count_classes(shifted(names)), [0, 3, 2, 1])


def test_sources_that_are_refused_name_the_fix():
    generator = (b for b in batch_list((X, Y)))
    with pytest.raises(TypeError, match=r"one-shot.*lambda: make_batches"):
        count_classes(generator)

    # The advice, followed: a function returning a fresh iterator.
    def make_batches():
        return (b for b in batch_list((X, Y)))

    np.testing.assert_array_equal(
        count_classes(lambda: make_batches(), C), np.bincount(Y, None, C)
    )
    for bad in (None, "labels.csv", 3, {"y": Y}):
        with pytest.raises(TypeError, match="as `fit` takes it"):
            count_classes(bad)
    with pytest.raises(TypeError, match="must return an iterator"):
        count_classes(lambda: 3)
    with pytest.raises(ValueError, match=r"arrays are counted whole.*y\[:n\]"):
        count_classes(Y, steps=2)


def test_steps_infinite_and_empty_sources():
    endless = ArrayBatches((X, Y), length=None)
    with pytest.raises(ValueError, match=r"infinite.*num_batches.*`steps`"):
        count_classes(endless)
    full = math.ceil(N / BATCH)
    counts = count_classes(endless, C, steps=full + 2)  # 1 epoch + 2 batches
    extra = np.concatenate([Y, Y[: 2 * BATCH]])
    np.testing.assert_array_equal(counts, np.bincount(extra, minlength=C))
    with pytest.warns(UserWarning, match=r"cover only 2 of its 6 batches"):
        counts = count_classes(ArrayBatches((X, Y)), C, steps=2)
    np.testing.assert_array_equal(counts, np.bincount(Y[:8], minlength=C))
    with pytest.warns(UserWarning, match=r"exceeds the PyDataset's 6 batches"):
        count_classes(ArrayBatches((X, Y)), C, steps=9)
    np.testing.assert_array_equal(
        count_classes(lambda: iter(batch_list((X, Y))), C, steps=1),
        np.bincount(Y[:BATCH], minlength=C),
    )
    with pytest.raises(ValueError, match="empty"):
        count_classes([])
    with pytest.raises(ValueError, match="empty"):
        count_classes(ArrayBatches((X, Y), length=0))
    with pytest.raises(ValueError, match="no labels"):
        count_classes(lambda: iter([]))
    with pytest.raises(ValueError, match="no labels"):
        count_classes(np.zeros([0], "int64"))


@pytest.mark.parametrize(
    "labels, num_classes, match",
    [
        (np.array([0, 1, 5]), 5, r"in \[0, 5\).*label of 5"),
        (np.array([0, -3, 1]), 5, r"label of -3.*`ignore_class`"),
        (np.array([0, -3, 1]), None, r"non-negative.*label of -3"),
        (np.array([0.0, 2.5]), 5, r"integer class ids.*label of 2.5"),
        (np.array([0.0, np.nan]), None, r"label of nan"),
        (np.array([1, 2**31]), None, r"label of 2147483648"),
        (np.array([[0.0, 0.8, 0.2]]), None, r"0s and 1s.*value of 0.8.*mixup"),
    ],
)
@pytest.mark.parametrize("kind", ["arrays", "list"])
def test_invalid_labels_name_the_value(labels, num_classes, match, kind):
    data = labels if kind == "arrays" else [labels[:1], labels[1:]]
    with pytest.raises(ValueError, match=match):
        count_classes(data, num_classes)


def test_invalid_sample_weights():
    with pytest.raises(ValueError, match=r"sample weight of -0.5"):
        count_classes(
            (X[:3], Y[:3], np.array([1, -0.5, 1])), sample_weighted=True
        )
    with pytest.raises(ValueError, match=r"sample weight of nan"):
        count_classes(
            [(X[:2], Y[:2], np.array([1.0, np.nan]))], sample_weighted=True
        )
    # Weights of skipped ids, and of rows without positives, are checked too.
    ids = np.array([[0, 1, -1], [1, 2, -1]])
    with pytest.raises(ValueError, match=r"sample weight of inf"):
        count_classes(
            (ids, ids, np.array([[1, 1, np.inf], [1, 1, 1]])),
            sparse=True,
            ignore_class=-1,
            sample_weighted=True,
        )
    rows = np.array([[1, 0], [0, 0]])
    for bad in (np.inf, np.nan, -1.0):
        with pytest.raises(ValueError, match=r"sample weight of"):
            count_classes(
                (rows, rows, np.array([1.0, bad])), sample_weighted=True
            )
    with pytest.raises(ValueError, match=r"6 weights for 2 labelled"):
        count_classes([(X[:2], Y[:2], np.ones((2, 3)))], sample_weighted=True)
    with pytest.raises(TypeError, match=r"as sample weights.*dtype string"):
        count_classes(
            [(X[:2], Y[:2], np.array(["a", "b"]))], sample_weighted=True
        )


def test_layouts_that_change_between_batches_are_errors():
    rows = np.eye(C)[Y[:4]]
    with pytest.raises(
        ValueError,
        match=r"batch 1 have shape \(4, 5\).*"
        r"first batch have shape \(4,\)",
    ):
        count_classes([Y[:4], rows])
    with pytest.raises(ValueError, match=r"batch 1 have shape \(4, 3\)"):
        count_classes([rows, rows[:, :3]])
    # Batches of different sizes are fine, of course.
    np.testing.assert_array_equal(count_classes([Y[:3], Y[3:]]), np.bincount(Y))


def test_unbatched_rows_from_a_list_warn_and_sparse_false_fixes_it():
    rows = np.eye(C)[Y]  # unbatched one-hot rows, one per element
    with pytest.warns(UserWarning, match="only classes 0 and 1.*sparse=False"):
        count_classes(list(rows), C)
    np.testing.assert_array_equal(
        count_classes(list(rows), C, sparse=False), np.bincount(Y, None, C)
    )


def test_progress_bar(capsys, monkeypatch):
    data = ArrayBatches((X, Y))
    count_classes(data, C, verbose=0)
    assert capsys.readouterr().out == ""
    # "auto": a bar once the count has run for `_AUTO_BAR_AFTER_S` (set
    # here, so that the machine's load does not decide).
    monkeypatch.setattr(counting_module, "_AUTO_BAR_AFTER_S", 1e9)
    count_classes(data, C)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(counting_module, "_AUTO_BAR_AFTER_S", -1.0)
    count_classes(data, C)
    assert "6/6" in capsys.readouterr().out
    count_classes(data, C, verbose=1)
    assert "6/6" in capsys.readouterr().out
    count_classes(data, C, verbose=2)
    out = capsys.readouterr().out
    assert out.count("6/6") == 1 and "\r" not in out


def test_many_batches_in_several_groups():
    # More labels than one group of 2**16: the groups add up.
    y = np.random.default_rng(3).integers(0, 300, 150_001)
    batches = [y[i : i + 1000] for i in range(0, len(y), 1000)]
    np.testing.assert_array_equal(
        count_classes(batches, 300), np.bincount(y, minlength=300)
    )
    rows = np.eye(300, dtype="float32")[y[:9000]]
    batches = [rows[i : i + 512] for i in range(0, len(rows), 512)]
    np.testing.assert_array_equal(
        count_classes(batches), np.bincount(y[:9000], minlength=300)
    )


def test_reused_batch_buffers_are_copied():
    # A source that refills one label buffer for every batch.
    buffer = np.zeros(BATCH, "int64")

    def refilled():
        for i in range(0, N - N % BATCH, BATCH):
            buffer[:] = Y[i : i + BATCH]
            yield X[:BATCH], buffer

    np.testing.assert_array_equal(
        count_classes(refilled, C),
        np.bincount(Y[: N - N % BATCH], minlength=C),
    )


@pytest.mark.skipif(
    importlib.util.find_spec("grain") is None, reason="grain is not installed"
)
def test_grain_iter_datasets_loaders_and_repeat():
    import grain

    samples = [(X[i], Y[i]) for i in range(N)]
    expected = np.bincount(Y, minlength=C)
    iter_ds = grain.MapDataset.source(samples).batch(BATCH).to_iter_dataset()
    np.testing.assert_array_equal(count_classes(iter_ds, C), expected)
    loader = grain.DataLoader(
        data_source=samples,
        sampler=grain.samplers.IndexSampler(N, num_epochs=1, shuffle=False),
        operations=[grain.transforms.Batch(BATCH)],
        worker_count=0,
    )
    np.testing.assert_array_equal(count_classes(loader, C), expected)
    endless = grain.MapDataset.source(samples).batch(BATCH).repeat()
    with pytest.raises(ValueError, match=r"infinite.*`steps`"):
        count_classes(endless)
    np.testing.assert_array_equal(
        count_classes(endless, C, steps=2), np.bincount(Y[:8], minlength=C)
    )


# ClassCounter: the counts reach the loss, in `fit`, from these sources.


def model_and_loss(loss, units=C):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    # lr = 0: the model stays fixed, so the loss shows the weights it used.
    model.compile(keras.optimizers.SGD(0.0), loss=loss)
    return model


FIT_SOURCES = ["arrays", "pydataset", "torch"]


@pytest.mark.parametrize("kind", FIT_SOURCES)
def test_class_counter_in_fit(kind):
    y = np.where(np.arange(N) == 3, C - 1, Y)  # no class 4 ...
    y[1] = 0  # ... but one 0: every class occurs
    y[-1] = 4
    loss = CBSoftmaxLoss(beta=0.9, from_logits=True)
    model = model_and_loss(loss)
    logits = model.predict(X, verbose=0)
    if kind == "arrays":
        counter = ClassCounter(y, verbose=0)  # the labels alone
        history = model.fit(
            X, y, batch_size=N, verbose=0, shuffle=False, callbacks=[counter]
        )
    else:
        train = source(kind, X, y)
        counter = ClassCounter(train, verbose=0)
        history = model.fit(
            train, verbose=0, shuffle=False, callbacks=[counter]
        )
    counts = np.bincount(y, minlength=C)
    np.testing.assert_array_equal(counter.counts, counts)
    np.testing.assert_array_equal(loss.class_counts, counts)
    weights = reference.cb_weights(counts, 0.9)
    per_sample = reference.loss_by_kind(
        "softmax", y, logits, weights, True, None
    )
    # Keras weighs each batch's mean by its size: the epoch's mean.
    np.testing.assert_allclose(
        history.history["loss"][0], per_sample.mean(), 1e-5
    )


def test_class_counter_one_unit_head_from_arrays():
    y = (Y == 4).astype("float32")
    loss = CBSigmoidLoss(beta=0.9, from_logits=True)
    model = model_and_loss(loss, units=1)
    counter = ClassCounter(y, verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_array_equal(
        loss.class_counts, np.bincount(y.astype(int), minlength=2)
    )
    # A class id >= 2 names the one-unit fix, from arrays as from tf.data.
    counter = ClassCounter(Y, verbose=0)
    counter.set_model(model)
    with pytest.raises(
        ValueError,
        match=r"one-unit output.*label of 4.*"
        r"C output units",
    ):
        counter.on_train_begin()


def test_class_counter_takes_ignore_class_for_multi_hot_targets():
    loss = CBSigmoidLoss(beta=0.9, from_logits=True, ignore_class=-1)
    model = model_and_loss(loss)
    counter = ClassCounter(ArrayBatches((X, T)), verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_array_equal(loss.class_counts, known_positives(T))
    # Per-token ids with padding: the loss's ignore_class, ids from the rank.
    tokens = RNG.integers(0, C, (N, 4))
    tokens[:, 3] = -1
    keras.utils.set_random_seed(3)
    tagger = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(C)])
    loss = CBSoftmaxLoss(beta=0.9, from_logits=True, ignore_class=-1)
    tagger.compile("sgd", loss=loss)
    counter = ClassCounter(tokens, verbose=0)
    counter.set_model(tagger)
    counter.on_train_begin()
    np.testing.assert_array_equal(
        loss.class_counts, np.bincount(tokens[tokens >= 0], minlength=C)
    )


def _losses_take_dense_ignore_class():
    loss = CBSigmoidLoss([1, 1], from_logits=True, ignore_class=-1)
    try:
        loss(np.array([[1.0, -1.0]]), np.zeros((1, 2), "float32"))
    except ValueError:
        return False
    return True


def test_multi_hot_targets_with_unknown_entries_train_with_the_counter():
    if not _losses_take_dense_ignore_class():
        pytest.skip("the losses refuse ignore_class on dense targets here")
    loss = CBSigmoidLoss(beta=0.9, from_logits=True, ignore_class=-1)
    model = model_and_loss(loss)
    train = ArrayBatches((X, T))
    counter = ClassCounter(train, verbose=0)
    history = model.fit(train, verbose=0, shuffle=False, callbacks=[counter])
    np.testing.assert_array_equal(loss.class_counts, known_positives(T))
    assert np.isfinite(history.history["loss"][0])


# A JAX user never imports TensorFlow to count. Run in the session's JAX
# child (tests/children.py), before any other script there.

NO_TF_SCRIPT = """
import sys
import numpy as np
import keras
import keras_cbloss
from keras_cbloss import CBFocalLoss, CBSoftmaxLoss, ClassCounter
imported = {"package": "tensorflow" in sys.modules}
from keras_cbloss import count_classes
import keras_cbloss.counting
imported["counting"] = "tensorflow" in sys.modules

class Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return self.x[4 * i:4 * i + 4], self.y[4 * i:4 * i + 4]

y = np.array([0, 2, 2, 1, 2, 0, 2, 1, 1, 2, 2, 2])
x = np.zeros((12, 3), "float32")
counts = [count_classes(y).tolist(), count_classes(Batches(x, y)).tolist(),
          count_classes((x, y, np.ones(12)), sample_weighted=True).tolist()]
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
loss = CBSoftmaxLoss(from_logits=True)
model.compile("sgd", loss=loss)
model.fit(x, y, verbose=0, callbacks=[ClassCounter(y, verbose=0)])
imported["trained"] = "tensorflow" in sys.modules
# Only counting a tf.data.Dataset needs TensorFlow (the user has it).
import tensorflow as tf
tf_data = count_classes(tf.data.Dataset.from_tensor_slices([0, 2, 2]))
result = {"backend": keras.backend.backend(), "imported": imported,
          "callback": issubclass(ClassCounter, keras.callbacks.Callback),
          "counts": counts, "loss": loss.class_counts.tolist(),
          "tf_data": tf_data.tolist()}
"""


@pytest.fixture(scope="module")
def jax_child():
    if BACKEND != "tensorflow":
        pytest.skip("run once, from the TensorFlow session")
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    out = children.run("jax", NO_TF_SCRIPT, fresh=True)
    assert out["backend"] == "jax"
    return out


def test_import_under_jax_does_not_import_tensorflow(jax_child):
    imported = jax_child["imported"]
    assert jax_child["callback"]
    assert not imported["package"], "import keras_cbloss imported TensorFlow"
    assert not imported["counting"], "keras_cbloss.counting imported it"
    # Counting a tf.data.Dataset does, and works under JAX.
    assert jax_child["tf_data"] == [1, 0, 2]


@pytest.mark.slow
def test_counting_without_tensorflow_under_jax(jax_child):
    expected = np.bincount([0, 2, 2, 1, 2, 0, 2, 1, 1, 2, 2, 2]).tolist()
    assert jax_child["counts"] == [expected] * 3
    assert jax_child["loss"] == expected
    assert not jax_child["imported"]["trained"], "counting imported TensorFlow"
