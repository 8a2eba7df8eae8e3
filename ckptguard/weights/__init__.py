"""Weight statistics: stream tensors from ``TensorRef``s (numpy only, never torch) and measure
what hand-crafted backdoors and model edits leave behind.

``decode``      bytes -> float32 blocks of rows, bounded memory
``roles``       what a tensor is for (embedding, norm, bias, linear, conv, ...) from name and shape
``thresholds``  every calibrated threshold, in one documented place
``stats``       per-tensor statistics (non-finite counts, moments, row/column norm outliers)
``spectrum``    top singular values of a bounded sample of a matrix (randomized SVD)
``diff``        tensor-by-tensor comparison with a claimed base checkpoint
"""
