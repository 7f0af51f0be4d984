"""Training rules that only show in behaviour: the class-balanced loss really weights the loss, early
stopping gives every phase a fresh patience, and images load (reproducibly) in DataLoader workers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.dataset import ImageDataset, scan_dataset
from tl_desktop.engine.data.preprocess import decode_size, eval_transform
from tl_desktop.engine.training.batch_sources import make_loader
from tl_desktop.engine.training.callbacks import EarlyStopping
from tl_desktop.engine.training.events import EpochEnded, PhaseStarted
from tl_desktop.engine.training.recipe import seed_worker
from tl_desktop.engine.training.trainer import Trainer


def _config(root: Path, out: Path, **train) -> RunConfig:
    settings = dict(epochs=1, head_epochs=1, batch_size=4, early_stopping_patience=0, seed=3)
    settings.update(train)
    blocks = settings.pop("trainable_blocks", 0)
    return RunConfig(data=DataConfig(root=str(root)), model=ModelConfig(backbone="tiny_cnn", trainable_blocks=blocks),
                     train=TrainConfig(**settings), out_dir=str(out))


def _train_losses(root: Path, out: Path, **train) -> list[float]:
    result = Trainer(_config(root, out, **train)).fit()
    assert result.status == "completed"
    return [e.train_loss for e in result.history]


def test_class_weights_change_the_training_loss_only_when_classes_are_imbalanced(tiny_backbone, tmp_path,
                                                                                make_image_folder):
    """Same seed, same data: weighting the loss is the only difference between "auto" and "off"."""
    imbalanced = make_image_folder(tmp_path / "imbalanced", classes={"a": 12, "b": 4}, size=36)
    weighted = _train_losses(imbalanced, tmp_path / "r1", class_balance="auto")
    plain = _train_losses(imbalanced, tmp_path / "r2", class_balance="off")
    assert weighted != plain

    balanced = make_image_folder(tmp_path / "balanced", classes={"a": 6, "b": 6}, size=36)
    assert _train_losses(balanced, tmp_path / "r3", class_balance="auto") == \
        _train_losses(balanced, tmp_path / "r4", class_balance="off")  # no weights: nothing else differs


def _phase(name: str, first: int, last: int) -> PhaseStarted:
    return PhaseStarted(phase=name, first_epoch=first, last_epoch=last, trainable_params=10, total_params=100,
                        lr=1e-3)


def _epoch(epoch: int, phase: str, val_accuracy: float, val_loss: float) -> EpochEnded:
    return EpochEnded(epoch=epoch, total_epochs=6, phase=phase, train_loss=1.0, train_accuracy=0.5,
                      val_loss=val_loss, val_accuracy=val_accuracy, lr=1e-3, seconds=1.0, eta_seconds=1.0,
                      is_best=False)


def test_early_stopping_patience_starts_again_in_each_phase():
    early = EarlyStopping(patience=2)
    early.on_event(_phase("head", 1, 2))
    early.on_event(_epoch(1, "head", 0.8, 0.5))
    early.on_event(_epoch(2, "head", 0.7, 0.6))  # one epoch without improvement
    assert not early.stop_training

    early.on_event(_phase("finetune", 3, 6))
    early.on_event(_epoch(3, "finetune", 0.7, 0.6))  # would be the second in a row, but the phase is new
    assert not early.stop_training, "unfreezing blocks must get the full patience"
    early.on_event(_epoch(4, "finetune", 0.75, 0.55))
    assert early.stop_training and "2 epochs" in early.reason
    assert "80.0%" in early.reason  # the best result so far is kept across phases


def test_early_stopping_keeps_the_best_result_across_phases():
    """The patience restarts, the best result does not: the new phase must beat the head phase's best."""
    early = EarlyStopping(patience=1)
    early.on_event(_phase("head", 1, 1))
    early.on_event(_epoch(1, "head", 0.9, 0.2))
    early.on_event(_phase("finetune", 2, 4))
    early.on_event(_epoch(2, "finetune", 0.85, 0.1))
    assert early.stop_training


def test_seed_worker_derives_numpy_and_random_seeds_from_the_torch_seed():
    torch.manual_seed(2**40 + 12345)  # larger than 32 bits: NumPy needs it reduced
    seed_worker(0)
    drawn = (np.random.randint(2**31), random.random())
    expected_seed = (2**40 + 12345) % 2**32
    assert drawn == (np.random.RandomState(expected_seed).randint(2**31), random.Random(expected_seed).random())


class _WorkerDraws(torch.utils.data.Dataset):
    """Returns what a worker's random generators produce, and the worker's torch seed."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[int, int, float]:
        return torch.initial_seed(), int(np.random.randint(2**31)), random.random()


def _draws(loader) -> list[tuple[int, int, float]]:
    return [(int(s), int(n), float(r)) for seeds, numbers, floats in loader
            for s, n, r in zip(seeds, numbers, floats)]


def test_workers_get_distinct_reproducible_seeds():
    def loader(seed: int):
        return make_loader(_WorkerDraws(), batch_size=1, shuffle=False, drop_last=False, device=torch.device("cpu"),
                           num_workers=2, generator=torch.Generator().manual_seed(seed))

    before = torch.get_num_threads()
    try:
        first, again, other = _draws(loader(5)), _draws(loader(5)), _draws(loader(6))
    finally:
        torch.set_num_threads(before)  # make_loader leaves cores to the workers
    assert first == again and first != other
    by_worker: dict[int, list[tuple[int, float]]] = {}
    for torch_seed, number, real in first:
        by_worker.setdefault(torch_seed, []).append((number, real))
    assert len(by_worker) == 2 and len({numbers for _, numbers, _ in first}) == 4  # no shared NumPy stream
    for torch_seed, drawn in by_worker.items():  # each worker's NumPy and random follow its own torch seed
        numpy_rng, python_rng = np.random.RandomState(torch_seed % 2**32), random.Random(torch_seed % 2**32)
        assert drawn == [(numpy_rng.randint(2**31), python_rng.random()) for _ in drawn]


def test_images_load_in_worker_processes_exactly_as_in_the_main_process(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 5, "b": 4}, size=40)
    samples = scan_dataset(DataConfig(root=str(root), val_fraction=0.2, test_fraction=0.0)).split.train
    pre = tiny_backbone.preprocessing
    dataset = ImageDataset(samples, eval_transform(pre), decode_size(pre))

    def batches(workers: int):
        loader = make_loader(dataset, batch_size=3, shuffle=False, drop_last=False, device=torch.device("cpu"),
                             num_workers=workers, generator=torch.Generator().manual_seed(0))
        return [(x.clone(), y.clone()) for x, y in loader]

    before = torch.get_num_threads()
    try:
        in_workers, in_process = batches(2), batches(0)
    finally:
        torch.set_num_threads(before)
    assert len(in_workers) == len(in_process) == 3
    for (x_w, y_w), (x_p, y_p) in zip(in_workers, in_process):
        assert torch.equal(x_w, x_p) and torch.equal(y_w, y_p)
    assert torch.cat([y for _, y in in_workers]).tolist() == [s.label for s in samples]


def test_training_with_worker_processes_is_reproducible(tiny_backbone, tmp_path, make_image_folder):
    """Decoding every epoch in two worker processes, with augmentation: the seed still decides everything."""
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)

    def history(out: str):
        trainer = Trainer(_config(root, tmp_path / out, num_workers=2, augmentation="light", trainable_blocks=1,
                                  epochs=2, head_epochs=1))
        trainer.use_caches = False  # images through the DataLoader's workers every epoch
        before = torch.get_num_threads()
        try:
            result = trainer.fit()
        finally:
            torch.set_num_threads(before)
        assert result.status == "completed", result
        return [(e.train_loss, e.val_loss, e.val_accuracy) for e in result.history]

    assert history("one") == history("two")


@pytest.fixture(autouse=True)
def _restore_global_rngs():
    """These tests reseed NumPy and random; leave the next test the state it would have had."""
    np_state, py_state = np.random.get_state(), random.getstate()
    yield
    np.random.set_state(np_state)
    random.setstate(py_state)
