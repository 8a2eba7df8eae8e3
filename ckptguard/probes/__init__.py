"""Activation probes: data-free backdoor detection for classifiers (the ``probes`` extra).

torch is imported lazily, inside functions of this package only: ``ckptguard scan`` never
imports it.  Weights reach torch from ``TensorRef``s (decoded by ``ckptguard.weights``), never
through ``torch.load``; architectures come from a module the user names or from an ONNX graph
interpreted op by op, never from code inside the scanned file.

``device``      CUDA/CPU choice and thread count (pure functions, then one applying call)
``network``     a classifier with hooks on its hidden units; state dicts from TensorRefs
``onnx_graph``  a small ONNX -> torch interpreter for common classifier ops
``margin``      maximum-margin backdoor detection (MM-BD): per-class achievable margins
``stimulate``   single-neuron stimulation: does one unit alone flip the output?
``runner``      both probes under a time budget, and the facts they produce
``hf_model``    Hugging Face classifier folders built from config.json (the ``hf`` extra)
``text_trigger`` one-token trigger search on tokenized clean text (HotFlip-style)
"""
