"""TEST DOUBLE of ``hbdk.torch_script.placeholder`` (Horizon Robotics' hbdk3): ``placeholder(shape,
torch_native=False, dtype=torch.float32, sample=None)`` describes one model input for HBIR export
(``tools._preprocess_inputs`` wraps every example tensor in one; ``tools.trace`` turns placeholders
back into tensors - the sample, or random data of the shape). Signature as used in tools.py
(read_file id 20265692608); the class body is the double's.
"""
import torch


class placeholder(object):  # noqa: N801 - the real class name
    def __init__(self, shape, torch_native=False, dtype=torch.float32, sample=None):
        self.shape = tuple(shape)
        self.torch_native = torch_native
        self.dtype = dtype
        self.sample = sample

    def __repr__(self):
        return "placeholder(shape=%s, torch_native=%s, dtype=%s)" % (self.shape, self.torch_native, self.dtype)
