"""Zip archives, read by ckptguard's own bounded reader, and the formats built on zip: PyTorch
checkpoints (``torch.save``), TorchScript, NumPy ``.npz`` and Keras v3 ``.keras`` files."""
