"""The Qt-free engine: data, backbones, training, evaluation and model files."""
