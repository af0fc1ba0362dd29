"""The ``qat-tui`` command.

    qat-tui                                 open the wizard (fresh settings)
    qat-tui --config FILE                   open the wizard with these settings
    qat-tui run --config FILE [--stage S]   run headless with rich progress; exit 1 when a stage fails
    qat-tui preset NAME [-o FILE]           write a preset's settings file (quick, sample)
    qat-tui run --config FILE --detach      start the run in the background (survives logout)
    qat-tui status [RUN_DIR]                runs and their stages, headless
    qat-tui attach [RUN_DIR]                follow a run (running or finished) in the wizard
    qat-tui resume RUN_DIR                  continue a stopped run where it stopped
    qat-tui export RUN_DIR -o FILE          the run's settings as a standalone Python script
    qat-tui debug RUN_DIR [--keep-float L]  per-layer float-vs-int8 errors; keep layers in float
    qat-tui serve [--port P]                the wizard in a browser, on http://127.0.0.1:8000

Nothing here imports torch or Textual at module level, so ``qat-tui --help`` answers at once.
"""
from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from typing import List, Optional

from core.i18n import _, resolve_lang, set_language
from core.stage_table import STAGES  # the stage names (a light module: no torch)

from .i18n import LANGS


def _cells(text: str) -> int:
    """Terminal cells of ``text``: Chinese characters and full-width punctuation take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _wrap_cells(text: str, width: int) -> List[str]:
    """``text`` wrapped to ``width`` terminal cells: at spaces, and between any two wide characters
    (Chinese has no spaces); argparse's own wrapping counts characters and overflows 80 columns."""
    lines: List[str] = []
    line, used, space = "", 0, False
    for token in re.findall(r"\s+|[^\s\u2e80-\uffef]+|[\u2e80-\uffef]", text):
        if token.isspace():
            space = True
            continue
        gap = " " if space and line else ""
        need = _cells(gap + token)
        if line and used + need > width:
            lines.append(line)
            line, used = token, _cells(token)
        else:
            line, used = line + gap + token, used + need
        space = False
    if line:
        lines.append(line)
    return lines


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help in the current language: its own words ("usage:") are not in our catalog, and its
    wrapping counts characters, not the two cells of a Chinese one."""

    def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)

    def _fill_text(self, text, width, indent):  # type: ignore[no-untyped-def]
        if "\n" in text.strip():  # the examples: laid out by hand
            return super()._fill_text(text, width, indent)
        return "\n".join(indent + line for line in _wrap_cells(" ".join(text.split()), width))

    def _split_lines(self, text, width):  # type: ignore[no-untyped-def]
        if _cells(text) == len(text):
            return super()._split_lines(text, width)
        return _wrap_cells(" ".join(text.split()), width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose own headings and -h/--help are in the current language (its subcommands'
    parsers are of this class too)."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help=_("show this help message and exit"))


def _epilog() -> str:
    return _("""\
examples:
  qat-tui                                   walk through the settings and run
  qat-tui preset quick -o quick.toml        a few-minute trial configuration
  qat-tui run --config quick.toml           the same run without the wizard
  qat-tui run --config runs/x/settings.toml --stage qat
                                            (re)run one stage; its input checkpoint must exist
  qat-tui run --config quick.toml --detach  keep training after the SSH session ends
  qat-tui attach                            watch the most recent run
  qat-tui export runs/x -o qat_x.py         python qat_x.py --stage float (no wizard needed)
  qat-tui debug runs/x                      which layers lost the accuracy, and their top-1 gain in float
  qat-tui debug runs/x --keep-float mid     the fix: [qconfig] float_layers += mid, then rerun
  qat-tui serve --preset quick              the wizard in a browser (127.0.0.1:8000; from your own
                                            machine: ssh -L 8000:127.0.0.1:8000 HOST)
""")


def _lang_of_argv(argv: List[str]) -> Optional[str]:
    """The value of ``--lang`` in ``argv`` (``--lang zh`` or ``--lang=zh``, anywhere), else None: read
    before the parser is built, so that its help is in that language."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1] if argv[i + 1] in LANGS else None
        if arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
            return value if value in LANGS else None
    return None


def _use_settings_lang(args: argparse.Namespace, settings: object) -> None:
    """Once a settings file is loaded: its ``[ui] lang`` when ``--lang`` was not given (``QAT_TUI_LANG``
    and the locale come after it, :func:`core.i18n.resolve_lang`)."""
    ui = getattr(settings, "ui", None)
    set_language(resolve_lang(getattr(args, "lang", None), getattr(ui, "lang", None)))


def _lang_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: qat-tui --lang zh run ... keeps the language named before the command
    parser.add_argument("--lang", choices=LANGS, default=argparse.SUPPRESS, help=_("as qat-tui --lang"))


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="qat-tui",
        description=_("Take a PyTorch model through float training, calibration, QAT, integer inference "
                      "and compilation, in a terminal wizard or headless."),
        epilog=_epilog(),
    )
    p.add_argument("--config", metavar="FILE", help=_("settings TOML to start the wizard from"))
    p.add_argument("--preset", metavar="NAME", help=_("start the wizard from a preset: quick or sample"))
    p.add_argument("--lang", choices=LANGS, help=_("language of the wizard and of the messages: en or zh; "
                   "default: [ui] lang of the settings, else the locale (LANGUAGE, LC_ALL, LANG: zh* -> zh, "
                   "else en)"))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help=_("run the stages headless from a settings file"),
                       description=_("Run the pipeline without the wizard; finished stages are skipped."))
    r.add_argument("--config", metavar="FILE", required=True, help=_("settings TOML (e.g. written by the wizard)"))
    r.add_argument("--stage", action="append", choices=STAGES, metavar="STAGE",
                   help=_("run only this stage (repeatable): {stages}").format(stages=", ".join(STAGES)))
    r.add_argument("--force", action="store_true", help=_("rerun stages even when already done with these settings"))
    r.add_argument("--download", action="store_true", help=_("download CIFAR-10 with torchvision when it is missing"))
    r.add_argument("--device", metavar="DEV", help=_("override [run] device: auto, cpu, cuda, cuda:N"))
    r.add_argument("--run-dir", metavar="DIR", help=_("override [run] run_dir"))
    r.add_argument("--detach", action="store_true",
                   help=_("run in a background process (new session: survives a closed terminal); follow it "
                          "with attach"))
    r.add_argument("--nice", type=int, metavar="N",
                   help=_("CPU niceness 0-19 (sets [run] nice): --detach's process always runs at [run] nice; "
                          "a run in this terminal keeps its priority unless given --nice"))
    _lang_option(r)

    st = sub.add_parser("status", help=_("list runs and their stages"),
                        description=_("Runs known to qat-tui (or RUN_DIR) and their stages."))
    st.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    _lang_option(st)

    at = sub.add_parser("attach", help=_("follow a run in the wizard"),
                        description=_("Open the run screen of a run: rebuilt from its event log, then following "
                                      "it live."))
    at.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help=_("default: the most recent run"))
    _lang_option(at)

    rs = sub.add_parser("resume", help=_("continue a stopped run"),
                        description=_("Finished stages are kept; an interrupted float or qat stage continues from "
                                      "its last finished epoch; calib restarts. Starts the run in the background "
                                      "and attaches."))
    rs.add_argument("run_dir", metavar="RUN_DIR")
    rs.add_argument("--headless", action="store_true", help=_("run in this terminal with rich output instead"))
    _lang_option(rs)

    ex = sub.add_parser("export", help=_("write the run's settings as a standalone script"),
                        description=_("Write one commented Python script with the run's settings baked in "
                                      "(python FILE --stage float|calib|qat|int_infer|compile) and the settings "
                                      "TOML beside it."))
    ex.add_argument("run_dir", metavar="RUN_DIR",
                    help=_("a run directory (holds settings.toml) or a settings TOML file"))
    ex.add_argument("-o", "--output", metavar="FILE", required=True,
                    help=_("script to write, e.g. qat_mobilenetv2.py"))
    _lang_option(ex)

    pr = sub.add_parser("preset", help=_("write a preset's settings file"),
                        description=_("Write the settings of a preset as a commented TOML file."))
    pr.add_argument("name", help=_("preset name: quick (minutes on CPU) or sample (Horizon's sample)"))
    pr.add_argument("-o", "--output", metavar="FILE", help=_("file to write (default: print to stdout)"))
    pr.add_argument("--data", metavar="DIR", help=_("set [data] root"))
    pr.add_argument("--run-dir", metavar="DIR", help=_("set [run] run_dir"))
    pr.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="set_values",
                    help=_("set any key, VALUE as in TOML (64, 0.5, true, [1, 8], {width = 16}; else text), "
                           "e.g. --set model.builder=my_net.py:build --set data.image_size=64 (repeatable)"))
    _lang_option(pr)

    db = sub.add_parser("debug", help=_("per-layer debug: why the int8 model lost accuracy"),
                        description=_("Compare the float and the quantized (qat, else calib) model layer by layer "
                                      "([debug] images test images): SQNR/cosine/max error per layer, accumulated "
                                      "and with the float input; the top-1 gained by keeping each of the worst "
                                      "layers in float; per-class accuracy. Writes debug_report.json and "
                                      "debug_report.html into the run folder."))
    db.add_argument("run_dir", metavar="RUN_DIR", help=_("a run directory (holds settings.toml)"))
    db.add_argument("--images", type=int, metavar="N", help=_("override [debug] images"))
    db.add_argument("--layers", type=int, metavar="K", help=_("override [debug] sensitivity_layers"))
    db.add_argument("--keep-float", action="append", metavar="LAYER", default=[],
                    help=_("add LAYER to the run's [qconfig] float_layers (repeatable) and show what reruns; "
                           "no debug is run"))
    db.add_argument("--int16", action="append", metavar="LAYER", default=[],
                    help=_("add LAYER to the run's [qconfig] int16_layers (16-bit output; Horizon's march bayes "
                           "and nash-*), repeatable, and show what reruns; no debug is run"))
    _lang_option(db)

    mo = sub.add_parser("models", help=_("list the models [model] arch accepts"),
                        description=_("The classification models of the installed torchvision ([model] arch), "
                                      "with one line each; your own model goes in [model] builder = "
                                      "\"file.py:function\"."))
    mo.add_argument("filter", nargs="?", default="", help=_("show only names containing this text"))
    _lang_option(mo)

    sv = sub.add_parser("serve", help=_("serve the wizard in a browser (textual-serve)"),
                        description=_("Serve the wizard over HTTP: every browser tab gets its own wizard. Listens "
                                      "on 127.0.0.1 unless told otherwise; from another machine forward the port: "
                                      "ssh -L 8000:127.0.0.1:8000 HOST"))
    sv.add_argument("--host", default="127.0.0.1",
                    help=_("address to listen on (default 127.0.0.1; a host that is not loopback needs "
                           "--allow-remote)"))
    sv.add_argument("--port", type=int, default=8000, help=_("port (default 8000)"))
    sv.add_argument("--allow-remote", action="store_true",
                    help=_("listen on a host that is not loopback: anyone who reaches it can drive the wizard"))
    start = sv.add_mutually_exclusive_group()
    # SUPPRESS: qat-tui --preset quick serve keeps the preset named before the command
    start.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help=_("settings TOML the wizard starts from"))
    start.add_argument("--preset", metavar="NAME", default=argparse.SUPPRESS, help=_("start the wizard from a preset"))
    _lang_option(sv)
    return p


def _cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.models import arch_choices

    archs = {k: v for k, v in arch_choices().items() if args.filter in k}
    if not archs:
        from core.errors import QatError

        close = sorted(k for k in arch_choices() if args.filter[:3] and args.filter[:3] in k)[:8]
        _print_error(QatError(_("no torchvision classifier has {name!r} in its name").format(name=args.filter),
                              hint=_("try {names}, or run qat-tui models without a filter").format(names=", ".join(close))
                              if close else _("run qat-tui models without a filter to see them all"),
                              title=_("Models")))
        return 2
    t = Table("arch", _("what it is"), box=None)
    for name, line in archs.items():
        t.add_row(name, line)
    Console().print(t)
    print(_("{n} models; use one as [model] arch, or your own: [model] builder = \"path/to/file.py:function\"").format(
        n=len(archs)))
    return 0


def _print_error(err: BaseException) -> None:
    from rich.console import Console
    from rich.markup import escape

    from core.errors import QatError

    console = Console(stderr=True)
    # messages name settings sections ("[float]") and paths: never read them as rich markup
    if isinstance(err, QatError):
        console.print("[bold red]%s[/] %s" % (escape(_("{title} error:").format(title=_(err.title))), escape(err.msg)),
                      highlight=False, markup=True)
        if err.hint:
            console.print("[yellow]->[/] %s" % escape(err.hint), highlight=False)
    else:
        console.print("[bold red]%s[/] %s" % (escape(_("error:")), escape(str(err))), highlight=False)


def _cmd_run(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    try:
        settings = _settings_of(args.config, args)
        updates = {}
        if args.download:
            settings.data.download = True
        if args.device:
            updates["device"] = args.device
        if args.run_dir:
            updates["run_dir"] = args.run_dir
        if args.nice is not None:
            updates["nice"] = args.nice
        if updates:
            data = settings.model_dump()
            data["run"].update(updates)
            settings = S.validate(data, source="command line")
    except QatError as e:
        _print_error(e)
        return 2
    if args.detach:
        return _detach(settings, stages=args.stage, force=args.force)
    from .headless import run_headless

    return run_headless(settings, stages=args.stage, force=args.force, nice=args.nice)


def _detach(settings, stages=None, force=False) -> int:
    import os

    from core import settings as S
    from core.worker import start_detached

    from core.errors import QatError

    run_dir = settings.run_path()
    try:
        os.makedirs(run_dir, exist_ok=True)
        S.save(settings, os.path.join(run_dir, S.SETTINGS_FILENAME))
        pid, _offset = start_detached(run_dir, stages=stages, force=force)
    except QatError as e:  # e.g. the disk is full
        _print_error(e)
        return 2
    except OSError as e:
        _print_error(QatError(_("cannot start the run in {path}: {error}").format(path=run_dir, error=e),
                              hint=_("choose a run folder you can write")))
        return 2
    print(_("started pid {pid} in the background; follow it: qat-tui attach {run_dir}   stop it: qat-tui attach, "
            "then c").format(pid=pid, run_dir=run_dir))
    return 0


def _settings_of(run_dir_or_file: str, args: Optional[argparse.Namespace] = None):
    """Settings of a run folder or a settings file (a moved/copied run folder runs where it is now).
    With ``args``: its ``[ui] lang`` becomes the language unless ``--lang`` was given."""
    from core.runs import load_run_settings

    settings, note = load_run_settings(run_dir_or_file)
    if args is not None:
        _use_settings_lang(args, settings)
    if note:
        print(note, file=sys.stderr)
    return settings


def _cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.runs import list_runs

    import os

    runs = list_runs([args.run_dir] if args.run_dir else None)
    if args.run_dir:
        runs = [r for r in runs if r.run_dir == os.path.abspath(args.run_dir)]
    console = Console()
    if not runs:
        console.print(_("no runs found in {path}").format(path=args.run_dir) if args.run_dir
                      else _("no runs found (start one with qat-tui)"))
        return 1 if args.run_dir else 0
    home = os.path.expanduser("~")
    t = Table(title=_("qat-tui runs"), title_justify="left", caption=_("top-1 per stage; ~ stale (its input ran "
              "again), x failed, - not run"), caption_justify="left")
    t.add_column(_("run directory, last change"), overflow="fold", ratio=1)
    for stage in STAGES:
        t.add_column(stage, no_wrap=True)
    for r in runs:
        cells, last = [], ""
        for stage in STAGES:
            rec = r.stages.get(stage) or {}
            status, top1 = rec.get("status"), rec.get("top1")
            last = max(last, str(rec.get("finished_at") or ""))
            mark = {"finished": "", "stale": "~", "failed": "x ", "cancelled": _("cancelled"),
                    "running": _("running")}.get(str(status), str(status or "-"))
            cells.append(mark + ("%.1f" % top1 if isinstance(top1, (int, float)) and status in ("finished", "stale")
                                 else ("" if mark.strip() else _("done"))))
        where = r.run_dir if not r.run_dir.startswith(home + os.sep) else "~" + r.run_dir[len(home):]
        state = _("running, pid {pid}").format(pid=r.pid) if r.running else last[:16].replace("T", " ")
        t.add_row("%s\n[dim]%s[/]" % (where, state), *cells)
    console.print(t)
    return 0


def _cmd_attach(args: argparse.Namespace) -> int:
    import os

    from core.errors import QatError
    from core.runs import list_runs

    run_dir = args.run_dir
    if not run_dir:
        runs = list_runs()
        if not runs:
            _print_error(QatError(_("no runs to attach to"), hint=_("start one with qat-tui, or name a run directory")))
            return 2
        run_dir = runs[0].run_dir
    run_dir = os.path.abspath(run_dir)
    if not os.path.exists(os.path.join(run_dir, "events.jsonl")):
        _print_error(QatError(_("{path} has no event log (events.jsonl): not a qat-tui run directory").format(
            path=run_dir)))
        return 2
    from .app import QatApp

    try:
        settings = _settings_of(run_dir, args)
    except QatError:
        settings = None
    return int(QatApp(settings=settings, attach=run_dir, lang=args.lang).run() or 0)


def _cmd_resume(args: argparse.Namespace) -> int:
    from core.errors import QatError

    try:
        settings = _settings_of(args.run_dir, args)
    except QatError as e:
        _print_error(e)
        return 2
    if args.headless:
        from .headless import run_headless

        return run_headless(settings)
    from .app import QatApp

    return int(QatApp(settings=settings, resume=settings.run_path(), lang=args.lang).run() or 0)


def _cmd_export(args: argparse.Namespace) -> int:
    from core.errors import QatError
    from core.export import export_script

    try:
        settings = _settings_of(args.run_dir, args)
        script, toml = export_script(settings, args.output)
    except QatError as e:
        _print_error(e)
        return 2
    print(_("wrote {script} and {toml}\nrun it stage by stage: python {script} --stage float").format(
        script=script, toml=toml))
    return 0


def _cmd_debug(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core import settings as S
    from core.errors import QatError, SettingsError

    console = Console()
    if not console.is_terminal:  # a file or a pipe has no width: 80 columns cut the 12-column table to "…"
        console = Console(width=max(console.width, 200))
    try:
        settings = _settings_of(args.run_dir, args)
        if args.keep_float and args.int16:
            raise SettingsError(_("--keep-float and --int16 in one call"),
                                hint=_("give one of them (a layer takes one precision)"))
        fix_names = args.keep_float or args.int16
        if fix_names:
            from core.debug import load_report, with_float_layers

            key = "int16_layers" if args.int16 else "float_layers"
            from core.pipeline import Pipeline

            report = load_report(settings.run_path())
            if report is not None:
                import difflib

                known = [layer["name"] for layer in report.layers]
                for name in fix_names:
                    if name not in known:
                        near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
                        raise SettingsError(
                            (_("{name!r} is not a layer of this model; nearest: {near}") if near
                             else _("{name!r} is not a layer of this model")).format(name=name, near=", ".join(near)),
                            hint=_("the layers are the names in qat-tui debug {run_dir}").format(run_dir=args.run_dir))
            from core.debug import save_before_fix

            before = settings
            settings = with_float_layers(settings, fix_names, key)
            from core.backends import get_backend

            get_backend(settings.run.backend, settings).validate_settings(settings)  # e.g. int16 where it is not offered
            save_before_fix(before.run_path(), before)  # the results screen shows before/after
            path = S.save(settings, _settings_file(args.run_dir)) or _settings_file(args.run_dir)
            print(_("[qconfig] {key} = {value} written to {path}").format(
                key=key, value=list(getattr(settings.qconfig, key)), path=path))
            for item in Pipeline(settings).plan():
                if item.action == "run":
                    print("  %-10s %s" % (item.stage, _("reruns: {reason}").format(reason=_(item.reason))))
            print(_("rerun: qat-tui run --config {path}").format(path=path))
            return 0
        over = {}
        if args.images:
            over["images"] = args.images
        if args.layers is not None:
            over["sensitivity_layers"] = args.layers
        if over:
            data = settings.model_dump()
            data["debug"].update(over)
            settings = S.validate(data)
        from core.debug import REPORT_HTML, REPORT_JSON, run_debug

        with console.status(_("per-layer debug of {path}").format(path=settings.run_path())) as status:
            report = run_debug(settings, log=lambda m: status.update(m[:100]))
    except QatError as e:
        _print_error(e)
        return 2
    from .debug_table import print_report

    print_report(console, report)
    print(_("wrote {json} and {html} in {path}").format(json=REPORT_JSON, html=REPORT_HTML, path=report.run_dir))
    return 0


def _settings_file(run_dir_or_file: str) -> str:
    import os

    from core import settings as S

    return os.path.join(run_dir_or_file, S.SETTINGS_FILENAME) if os.path.isdir(run_dir_or_file) else run_dir_or_file


def _cmd_preset(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    overrides: dict = {}
    if args.data:
        overrides["data"] = {"root": args.data}
    if args.run_dir:
        overrides["run"] = {"run_dir": args.run_dir}
    try:
        for item in args.set_values:
            section, key, value = S.parse_assignment(item)
            overrides.setdefault(section, {})[key] = value
        settings = S.preset(args.name, **overrides)
    except QatError as e:
        _print_error(e)
        return 2
    if args.output:
        S.save(settings, args.output)
        print(_("wrote {path} (run it: qat-tui run --config {path})").format(path=args.output))
    else:
        sys.stdout.write(S.dumps(settings))
    return 0


def _cmd_wizard(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    try:
        if args.config:
            settings = _settings_of(args.config, args)
        elif args.preset:
            settings = S.preset(args.preset)
        else:
            settings = None
    except QatError as e:
        _print_error(e)
        return 2
    from .app import QatApp

    app = QatApp(settings=settings, lang=args.lang)
    code = app.run()
    return int(code or 0)


def _cmd_serve(args: argparse.Namespace) -> int:
    from core import settings as S
    from core.errors import QatError

    from .serve import host_problem, serve

    problem = host_problem(args.host, args.allow_remote)
    if problem:  # refused before anything is loaded
        print(problem, file=sys.stderr)
        return 2
    try:  # bad settings are said here, once, rather than in every browser tab
        if args.config:
            _settings_of(args.config, args)
        elif args.preset:
            S.preset(args.preset)
    except QatError as e:
        _print_error(e)
        return 2
    return serve(args.host, args.port, args.allow_remote, args.config, args.preset, getattr(args, "lang", None))


def _no_terminal(args: argparse.Namespace) -> Optional[str]:
    """The one-line message for a wizard command started without a terminal (stdin or stdout not a
    TTY: ``qat-tui < /dev/null``, a pipe, cron, no controlling terminal), else None. Textual would
    wait for keys that never come and write escape codes into the pipe. A wizard that textual-serve
    started (``qat-tui serve``) talks to the browser through pipes on purpose: it passes."""
    from .serve import under_web_driver

    wizard = args.command in (None, "attach") or (args.command == "resume" and not args.headless)
    if not wizard or (sys.stdin.isatty() and sys.stdout.isatty()) or under_web_driver():
        return None
    which = "stdin" if not sys.stdin.isatty() else "stdout"
    if args.command == "attach":
        other = _("qat-tui status {run_dir} shows the run without one").format(run_dir=args.run_dir or "")
    elif args.command == "resume":
        other = _("qat-tui resume {run_dir} --headless continues it here").format(run_dir=args.run_dir)
    else:
        other = _("run headless: qat-tui run --config FILE (qat-tui preset quick -o FILE writes one); "
                  "follow a running run from a terminal with qat-tui attach")
    return _("qat-tui: the wizard needs a terminal ({which} is not one); {other}").format(
        which=which, other=other.replace("  ", " "))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the language before the parser is built (its help is translated): --lang, QAT_TUI_LANG, the locale;
    # a settings file's [ui] lang is read when the file is loaded (_settings_of)
    set_language(resolve_lang(_lang_of_argv(argv)))
    args = _parser().parse_args(argv)
    problem = _no_terminal(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "preset":
            return _cmd_preset(args)
        if args.command == "models":
            return _cmd_models(args)
        if args.command == "status":
            return _cmd_status(args)
        if args.command == "attach":
            return _cmd_attach(args)
        if args.command == "resume":
            return _cmd_resume(args)
        if args.command == "export":
            return _cmd_export(args)
        if args.command == "debug":
            return _cmd_debug(args)
        if args.command == "serve":
            return _cmd_serve(args)
        return _cmd_wizard(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
