"""Deployment outside torch: a model file exported to ONNX (logits and probabilities, the preprocessing in
its metadata), the check that onnxruntime gives the app's answers, safe loading of ONNX files, and the
onnxruntime predictor that serves the same prediction pipeline as torch's."""

ONNX_SUFFIX = ".onnx"
