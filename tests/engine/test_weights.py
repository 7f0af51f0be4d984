"""Weight resolution and the downloader, against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torch import nn

from tl_desktop.engine.models import weights
from tl_desktop.engine.models.backbones import (
    BackboneError,
    check_weights_file,
    create_model,
    get_backbone_spec,
)
from tl_desktop.engine.models.builders import _densenet_keys
from tl_desktop.engine.models.weights import (
    DownloadError,
    WeightsFileError,
    WeightsUnavailable,
    download_file,
    load_state_dict_file,
    resolve_weights,
    weights_status,
)
from tl_desktop.engine.runtime.stop import StopRequested, StopToken

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        if self.path.endswith("/missing.pth"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path.endswith("/half.pth"):
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TL_DESKTOP_WEIGHTS_MIRROR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return tmp_path / "cache" / "weights"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_reports_progress(server, tmp_path):
    _, base = server
    calls = []
    dest = download_file(f"{base}/good.pth", tmp_path / "w" / "good.pth", PAYLOAD_SHA,
                         progress=lambda done, total: calls.append((done, total)))
    assert dest.read_bytes() == PAYLOAD
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert _leftovers(tmp_path / "w") == ["good.pth"]


def test_hash_prefix_accepted_like_torch_hub(server, tmp_path):
    _, base = server
    assert download_file(f"{base}/good.pth", tmp_path / "good.pth", PAYLOAD_SHA[:8]).is_file()


def test_checksum_mismatch_rejected_and_nothing_kept(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(f"{base}/good.pth", tmp_path / "w" / "good.pth", "0" * 64)
    assert _leftovers(tmp_path / "w") == []


def test_connection_closed_half_way_leaves_no_file(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="interrupted"):
        download_file(f"{base}/half.pth", tmp_path / "w" / "half.pth", PAYLOAD_SHA)
    assert _leftovers(tmp_path / "w") == []


def test_stop_token_honoured_and_nothing_kept(server, tmp_path, monkeypatch):
    _, base = server
    monkeypatch.setattr(weights, "CHUNK_BYTES", 4096)
    stop = StopToken()
    seen = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done >= 8192:
            stop.request()

    with pytest.raises(StopRequested):
        download_file(f"{base}/good.pth", tmp_path / "w" / "good.pth", PAYLOAD_SHA, progress=progress, stop=stop)
    assert max(seen) < len(PAYLOAD)
    assert _leftovers(tmp_path / "w") == []


def _fake_spec(name: str = "resnet18", filename: str = "good.pth", sha: str = PAYLOAD_SHA):
    return dataclasses.replace(get_backbone_spec(name), weights_filename=filename,
                               weights_url="http://127.0.0.1:9/unreachable/" + filename, weights_sha256=sha)


def test_mirror_env_honoured_then_cached(server, cache, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("TL_DESKTOP_WEIGHTS_MIRROR", f"{base}/mirror")
    spec = _fake_spec()
    assert weights_status(spec) == "download"
    path = resolve_weights(spec)
    assert path == cache / "good.pth" and path.read_bytes() == PAYLOAD
    assert httpd.requests == ["/mirror/good.pth"]
    assert weights_status(spec) == "cached"
    assert resolve_weights(spec) == path and len(httpd.requests) == 1


def test_failed_download_says_exactly_what_to_do(server, cache, monkeypatch):
    _, base = server
    monkeypatch.setenv("TL_DESKTOP_WEIGHTS_MIRROR", base)
    with pytest.raises(WeightsUnavailable) as info:
        resolve_weights(_fake_spec(filename="missing.pth"))
    text = str(info.value)
    assert f"{base}/missing.pth" in text and str(cache / "missing.pth") in text
    assert "--weights-file" in text and "Load weights from file" in text and "TL_DESKTOP_WEIGHTS_MIRROR" in text
    assert not (cache / "missing.pth").exists()


def test_offline_message_names_the_published_url(cache):
    spec = get_backbone_spec("resnet18")
    with pytest.raises(WeightsUnavailable, match="downloading is switched off") as info:
        resolve_weights(spec, allow_download=False)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in str(info.value)


def test_pickled_full_model_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(WeightsFileError, match=r"pickled model.*state_dict"):
        load_state_dict_file(path)


def test_state_dict_files_load(tmp_path):
    from safetensors.torch import save_file

    tensors = {"a": torch.ones(2), "b": torch.zeros(3)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": tensors, "epoch": 3}, tmp_path / "ckpt.pt")
    for name in ("w.safetensors", "ckpt.pt"):
        loaded = load_state_dict_file(tmp_path / name)
        assert loaded.keys() == tensors.keys() and torch.equal(loaded["a"], tensors["a"])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFileError, match="junk.pth"):
        load_state_dict_file(tmp_path / "junk.pth")


def test_user_file_in_original_torchvision_layout(tmp_path, cache):
    import torchvision

    torch.manual_seed(3)
    original = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(original.state_dict(), tmp_path / "mobilenet-custom.pth")
    model = create_model("mobilenet_v3_large", 4, weights_file=tmp_path / "mobilenet-custom.pth")
    assert torch.equal(model.blocks[0][0].weight, original.features[0][0].weight)
    assert torch.equal(model.blocks[-1][1].running_var, original.features[-1][1].running_var)
    assert torch.equal(model.pool[2].weight, original.classifier[0].weight)
    assert model.head[-1].out_features == 4


def test_user_file_from_classifier_model_and_renamed_keys(tmp_path, tiny_backbone):
    from safetensors.torch import save_file

    trained = create_model(tiny_backbone.name, 5)
    save_file(trained.state_dict(), str(tmp_path / "trained.safetensors"))
    model = create_model(tiny_backbone.name, 2, weights_file=tmp_path / "trained.safetensors")
    assert torch.equal(model.blocks[1][0].weight, trained.blocks[1][0].weight)
    renamed = {f"layer_{i}": v for i, v in enumerate(trained.blocks.state_dict().values())}
    torch.save({**renamed, "fc.w": torch.zeros(10, 16), "fc.b": torch.zeros(10)}, tmp_path / "renamed.pth")
    check_weights_file(tiny_backbone.name, tmp_path / "renamed.pth")
    model = create_model(tiny_backbone.name, 2, weights_file=tmp_path / "renamed.pth")
    assert torch.equal(model.blocks[2][1].running_mean, trained.blocks[2][1].running_mean)


def test_weights_of_another_backbone_rejected(tmp_path, tiny_backbone):
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(BackboneError, match="does not fit"):
        create_model(tiny_backbone.name, 2, weights_file=tmp_path / "other.pth")
    with pytest.raises(BackboneError, match="other.pth does not fit"):
        check_weights_file(tiny_backbone.name, tmp_path / "other.pth")


def test_missing_user_file_named(tmp_path, tiny_backbone):
    with pytest.raises(WeightsFileError, match="nope.pth"):
        create_model(tiny_backbone.name, 2, weights_file=tmp_path / "nope.pth")


def test_densenet_published_key_names_are_converted():
    old = {"features.denseblock1.denselayer1.norm.1.weight": torch.ones(1), "classifier.bias": torch.ones(1)}
    assert set(_densenet_keys(old)) == {"features.denseblock1.denselayer1.norm1.weight", "classifier.bias"}


def test_unreachable_server_becomes_weights_unavailable(cache):
    with pytest.raises(WeightsUnavailable, match="could not download http://127.0.0.1:9/unreachable/good.pth"):
        resolve_weights(_fake_spec())
    assert not cache.exists() or _leftovers(cache) == []


def test_a_damaged_cached_copy_is_deleted_and_downloaded_again(server, cache, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("TL_DESKTOP_WEIGHTS_MIRROR", base)
    cache.mkdir(parents=True)
    (cache / "good.pth").write_bytes(bytes(reversed(PAYLOAD)))  # right size, wrong bytes
    path = resolve_weights(_fake_spec())
    assert path.read_bytes() == PAYLOAD and httpd.requests == ["/good.pth"]
    assert (cache / "good.pth.verified").is_file()
    assert resolve_weights(_fake_spec()) == path and len(httpd.requests) == 1


def test_a_damaged_cached_copy_offline_is_reported_as_damaged_not_as_pickle(cache):
    cache.mkdir(parents=True)
    (cache / "good.pth").write_bytes(b"\x80random bytes, not weights" * 100)
    with pytest.raises(WeightsUnavailable) as info:
        resolve_weights(_fake_spec(), allow_download=False)
    text = str(info.value)
    assert "was damaged (its checksum did not match) and was deleted" in text and "pickle" not in text
    assert not (cache / "good.pth").exists()


def test_a_sound_cached_copy_is_hashed_once(cache, monkeypatch):
    cache.mkdir(parents=True)
    (cache / "good.pth").write_bytes(PAYLOAD)
    assert resolve_weights(_fake_spec(), allow_download=False) == cache / "good.pth"
    monkeypatch.setattr(weights.hashlib, "sha256", None)  # a second hash would fail
    assert resolve_weights(_fake_spec(), allow_download=False) == cache / "good.pth"


def test_a_damaged_cached_copy_counts_as_a_download_before_any_run_starts(cache):
    cache.mkdir(parents=True)
    (cache / "good.pth").write_bytes(b"garbage")
    assert weights_status(_fake_spec()) == "download"
    with pytest.raises(WeightsUnavailable, match="was damaged"):
        resolve_weights(_fake_spec(), allow_download=False)


def test_random_bytes_in_a_weights_file_are_called_damaged_not_a_pickled_model(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(WeightsFileError) as info:
        load_state_dict_file(path)
    assert "is damaged, or not weights at all" in str(info.value) and "pickled" not in str(info.value)
