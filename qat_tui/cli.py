"""The ``qat-tui`` command.

    qat-tui                                 open the wizard (fresh settings)
    qat-tui --config FILE                   open the wizard with these settings
    qat-tui run --config FILE [--stage S]   run headless with rich progress; exit 1 when a stage fails
    qat-tui preset NAME [-o FILE]           write a preset's settings file (quick, sample)

Nothing here imports torch or Textual at module level, so ``qat-tui --help`` answers at once.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

STAGES = ("float", "calib", "qat", "int_infer", "compile")

EPILOG = """\
examples:
  qat-tui                                   walk through the settings and run
  qat-tui preset quick -o quick.toml        a few-minute trial configuration
  qat-tui run --config quick.toml           the same run without the wizard
  qat-tui run --config runs/x/settings.toml --stage qat
                                            (re)run one stage; its input checkpoint must exist
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qat-tui",
        description="Take a PyTorch model through float training, calibration, QAT, integer inference "
        "and compilation, in a terminal wizard or headless.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="settings TOML to start the wizard from")
    p.add_argument("--preset", metavar="NAME", help="start the wizard from a preset: quick or sample")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run the stages headless from a settings file",
                       description="Run the pipeline without the wizard; finished stages are skipped.")
    r.add_argument("--config", metavar="FILE", required=True, help="settings TOML (e.g. written by the wizard)")
    r.add_argument("--stage", action="append", choices=STAGES, metavar="STAGE",
                   help="run only this stage (repeatable): %s" % ", ".join(STAGES))
    r.add_argument("--force", action="store_true", help="rerun stages even when already done with these settings")
    r.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision when it is missing")
    r.add_argument("--device", metavar="DEV", help="override [run] device: auto, cpu, cuda, cuda:N")
    r.add_argument("--run-dir", metavar="DIR", help="override [run] run_dir")

    pr = sub.add_parser("preset", help="write a preset's settings file",
                        description="Write the settings of a preset as a commented TOML file.")
    pr.add_argument("name", help="preset name: quick (minutes on CPU) or sample (Horizon's sample)")
    pr.add_argument("-o", "--output", metavar="FILE", help="file to write (default: print to stdout)")
    pr.add_argument("--data", metavar="DIR", help="set [data] root")
    pr.add_argument("--run-dir", metavar="DIR", help="set [run] run_dir")
    return p


def _print_error(err: BaseException) -> None:
    from rich.console import Console

    from core.errors import QatError

    console = Console(stderr=True)
    if isinstance(err, QatError):
        console.print("[bold red]%s error:[/] %s" % (err.title, err.msg), highlight=False, markup=True)
        if err.hint:
            console.print("[yellow]->[/] %s" % err.hint, highlight=False)
    else:
        console.print("[bold red]error:[/] %s" % err, highlight=False)


def _cmd_run(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    try:
        settings = S.load(args.config)
        updates = {}
        if args.download:
            settings.data.download = True
        if args.device:
            updates["device"] = args.device
        if args.run_dir:
            updates["run_dir"] = args.run_dir
        if updates:
            data = settings.model_dump()
            data["run"].update(updates)
            settings = S.validate(data, source="command line")
    except QatError as e:
        _print_error(e)
        return 2
    from .headless import run_headless

    return run_headless(settings, stages=args.stage, force=args.force)


def _cmd_preset(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    overrides = {}
    if args.data:
        overrides["data"] = {"root": args.data}
    if args.run_dir:
        overrides["run"] = {"run_dir": args.run_dir}
    try:
        settings = S.preset(args.name, **overrides)
    except QatError as e:
        _print_error(e)
        return 2
    if args.output:
        S.save(settings, args.output)
        print("wrote %s (run it: qat-tui run --config %s)" % (args.output, args.output))
    else:
        sys.stdout.write(S.dumps(settings))
    return 0


def _cmd_wizard(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    try:
        if args.config:
            settings = S.load(args.config)
        elif args.preset:
            settings = S.preset(args.preset)
        else:
            settings = None
    except QatError as e:
        _print_error(e)
        return 2
    from .app import QatApp

    app = QatApp(settings=settings)
    code = app.run()
    return int(code or 0)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "preset":
            return _cmd_preset(args)
        return _cmd_wizard(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
