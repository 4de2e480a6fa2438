"""RGB vision: the ONNX face detector (and its int8 build), mask status, tracking, box helpers."""
