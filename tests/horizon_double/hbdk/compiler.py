"""TEST DOUBLE of ``hbdk.compiler`` (Horizon Robotics' hbdk3), following the source in the code index
(read_file id 20877996094): ``compile_hbir_model(model, march, hbm, input_name=None,
input_source=None, name=None, input_layout=None, output_layout=None, opt="O2", balance_factor=2,
progressbar=True, visualize=False, debug=False, jobs=16, extra_args=None)`` (alias of
``CompileHbirModel``) runs ``hbdk-cc --march <march> -m <hbir> -f hbir <opt flags> -o <hbm> --jobs <n>
[-n name] [-i sources] [--input-name names] [--input-layout L] [--output-layout L] [--progressbar]
[--dev-dump-graph] [--debug] [extra args...]`` with output relayed into ``sys.stdout``/``sys.stderr``.
``_run_model_compile_with_cmd`` raises RuntimeError("HBDK model compilation FAIL, please check with
HBDK Group") on a non-zero exit, else prints "HBDK model compilation SUCCESS" and returns 0. The opt
flags come from ``hbdk.util.norm.opt_to_str``; for an unknown ``opt`` it returns None and building the
command raises TypeError, as in the source. The mxnet/tensorflow compilers are not emulated.
"""
import sys
from typing import Sequence, Union

from .util.norm import opt_to_str, str_list_to_str
from .util.process import run_program_redirect_realtime


def _run_model_compile_with_cmd(cmd: Sequence[str]):
    p = run_program_redirect_realtime(cmd, stdout=sys.stdout, stderr=sys.stderr)
    ret = p.returncode
    if ret != 0:
        raise RuntimeError("HBDK model compilation FAIL, please check with HBDK Group")
    else:
        print("HBDK model compilation SUCCESS")
    return ret


def CompileHbirModel(model: str, march: str, hbm: str, input_name=None, input_source=None, name: str = None,
                     input_layout: str = None, output_layout: str = None, opt: Union[str, int] = "O2",
                     balance_factor: int = 2, progressbar: bool = True, visualize: bool = False,
                     debug: bool = False, jobs: int = 16, extra_args: list = None):
    """Compile an hbir model; 0 if model compile pass."""
    if isinstance(model, str):
        open(model, "rb").close()
    cmd = ["hbdk-cc", "--march", march, "-m", model, "-f", "hbir", *opt_to_str(opt, balance_factor), "-o", hbm,
           "--jobs", str(jobs)]
    if name:
        cmd += ["-n", name]
    if input_source:
        cmd += ["-i", str_list_to_str(input_source)]
    if input_name:
        cmd += ["--input-name", str_list_to_str(input_name)]
    if input_layout:
        cmd += ["--input-layout", input_layout]
    if output_layout:
        cmd += ["--output-layout", output_layout]
    if progressbar:
        cmd += ["--progressbar"]
    if visualize:
        cmd += ["--dev-dump-graph"]
    if debug:
        cmd += ["--debug"]
    if extra_args:
        cmd += extra_args
    return _run_model_compile_with_cmd(cmd)


compile_hbir_model = CompileHbirModel


def CompileMxnetModel(*args, **kwargs):
    raise NotImplementedError("test double: the mxnet compiler is not emulated")


def CompileTensorflowModel(*args, **kwargs):
    raise NotImplementedError("test double: the tensorflow compiler is not emulated")


compile_mxnet_model = CompileMxnetModel
compile_tensorflow_model = CompileTensorflowModel
