"""TEST DOUBLE of ``hbdk.torch_script`` (Horizon Robotics' hbdk3 TorchScript front end): the functions are
in ``tools`` (following the source stored in the code index, read_file id 20265692608, which imports
``hbdk.torch_script.placeholder.placeholder``)."""
