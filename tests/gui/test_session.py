"""The pages' shared state: the configuration changes through the session and is remembered as one key."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings

from tl_desktop.config import ModelConfig, RunConfig, TrainConfig
from tl_desktop.gui.session import Session
from tl_desktop.gui.stored_config import CONFIG_KEY, load_config, save_config


def test_set_config_signals_only_a_change(qtbot, settings):
    session = Session(settings)
    changes: list[RunConfig] = []
    session.config_changed.connect(lambda: changes.append(session.config))
    same = session.config.replace()
    session.set_config(same)
    assert changes == []
    other = session.config.replace(train=TrainConfig(epochs=4, head_epochs=1))
    session.set_config(other)
    assert changes == [other] and session.config is other


def test_the_config_is_stored_as_one_json_key_and_read_back(settings):
    config = RunConfig(model=ModelConfig(backbone="tiny_cnn", trainable_blocks="all", weights_file="/w.pt"),
                       train=TrainConfig(epochs=7, head_epochs=2, cached_views=6))
    save_config(settings, config)
    assert settings.allKeys() == [CONFIG_KEY]
    assert json.loads(settings.value(CONFIG_KEY))["train"]["epochs"] == 7
    again = load_config(QSettings(settings.fileName(), QSettings.Format.IniFormat))
    assert again.train == config.train and again.model.trainable_blocks == "all"
    assert again.model.weights_file is None  # a weights file is chosen again in each session


def test_an_unreadable_or_newer_config_gives_the_defaults(settings):
    settings.setValue(CONFIG_KEY, "{not json")
    assert load_config(settings) == RunConfig()
    settings.setValue(CONFIG_KEY, json.dumps({**RunConfig().to_dict(), "schema_version": 99}))
    assert load_config(settings) == RunConfig()


def test_settings_of_earlier_versions_are_read_when_there_is_no_stored_config(settings):
    settings.setValue("model/backbone", "tiny_cnn")
    settings.setValue("model/dropout", 0.35)
    settings.setValue("train/epochs", 9)
    settings.setValue("train/augmentation", "strong")
    config = load_config(settings)
    assert config.model.backbone == "tiny_cnn" and config.model.dropout == 0.35
    assert config.train.epochs == 9 and config.train.augmentation == "strong"
    assert config.train.batch_size == TrainConfig().batch_size


def test_reading_the_settings_form_writes_nothing(qtbot, window, settings, choose_tiny_model):
    choose_tiny_model(window, epochs=5)
    settings.sync()
    before = {key: settings.value(key) for key in settings.allKeys()}
    form = window.model_page.settings_form
    assert form.train_config() == form.train_config()
    assert window.model_page.run_config().train.epochs == 5
    assert {key: settings.value(key) for key in settings.allKeys()} == before
    assert not any(key.startswith("train/") for key in settings.allKeys())


def test_model_page_changes_reach_the_train_page_through_the_session(qtbot, window, make_image_folder, tmp_path,
                                                                     choose_tiny_model, scan_folder):
    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    choose_tiny_model(window, epochs=2, trainable=0)
    assert window.session.config.model.backbone == "tiny_cnn"
    assert window.session.config.train.epochs == 2 and window.session.config.data.root
    window.go_to(2)
    plan = window.train_page.plan
    assert plan.text() == ("Ready: Tiny CNN (tests), training only the new head, 2 epochs on "
                           f"{len(window.session.scan.split.train)} images (2 classes), device: Processor (CPU).")
    window.model_page.settings_form.epochs.setValue(5)
    window.model_page.freeze.set_value("all")
    assert window.session.config.train.epochs == 5 and window.session.config.model.trainable_blocks == "all"
    assert plan.text().startswith("Ready: Tiny CNN (tests), training all blocks, 5 epochs on ")
