"""TEST DOUBLE of ``hbdk.checker`` (Horizon Robotics' hbdk3), following the source in the code index
(read_file id 20811565886): ``check_hbir_model(model, march, input_name=None, input_source=None,
advice=0, check_quanti_param=True)`` (alias of ``CheckHbirModel``) runs ``hbdk-model-check --march
<march> -m <hbir> -f hbir [-i <sources>] [--input-name <names>] [--advice N] [--skip-check-quanti-param]``
(``--advice`` only when advice is truthy: 0/None give no advice) with its output relayed into
``sys.stdout``/``sys.stderr``, then prints "HBDK model check PASS" or "HBDK model check FAIL, please
check with HBDK Group" and returns the tool's exit code. The mxnet/tensorflow checkers are not
emulated.
"""
import sys
from typing import Sequence

from .util.norm import str_list_to_str
from .util.process import run_program_redirect_realtime


def _run_model_check_with_cmd(cmd: Sequence[str]):
    p = run_program_redirect_realtime(cmd, stdout=sys.stdout, stderr=sys.stderr)
    ret = p.returncode
    if ret != 0:
        print("HBDK model check FAIL, please check with HBDK Group")
    else:
        print("HBDK model check PASS")
    return ret


def CheckHbirModel(model: str, march: str, input_name=None, input_source=None, advice: int = 0,
                   check_quanti_param: bool = True):
    """Check an hbir model; 0 if model check pass."""
    if isinstance(model, str):
        open(model, "rb").close()  # the real one opens the file (FileNotFoundError when missing)
    cmd = ["hbdk-model-check", "--march", march, "-m", model, "-f", "hbir"]
    if input_source:
        cmd += ["-i", str_list_to_str(input_source)]
    if input_name:
        cmd += ["--input-name", str_list_to_str(input_name)]
    if advice:
        cmd += ["--advice", str(advice)]
    if not check_quanti_param:
        cmd += ["--skip-check-quanti-param"]
    return _run_model_check_with_cmd(cmd)


check_hbir_model = CheckHbirModel


def CheckMxnetModel(*args, **kwargs):
    raise NotImplementedError("test double: the mxnet model checker is not emulated")


def CheckTensorflowModel(*args, **kwargs):
    raise NotImplementedError("test double: the tensorflow model checker is not emulated")


check_mxnet_model = CheckMxnetModel
check_tensorflow_model = CheckTensorflowModel
