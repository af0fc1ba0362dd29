"""TEST DOUBLE of Horizon Robotics' ``hbdk4`` package (the hbdk4 compiler of the J6 / RDK S100
toolchain, wheel ``hbdk4-compiler``, not on PyPI; described in HorizonRobotics/OE-Skills@0c35b73
``horizon/docs/oe_code_chunk_hbdk4_compiler.md``). Only ``hbdk4.compiler`` is emulated - see its docstring."""
