"""placeholder"""
def export_onnx_model(cfg, model, inputs):
    raise RuntimeError
