"""Export the chosen settings as one standalone, commented Python script (and the settings TOML).

The script uses the chosen backend's API directly - each backend brings its template (its spec's
``template``, beside its module) - and runs stage by stage: ``python FILE --stage float|calib|qat|int_infer|compile``.

Values from the settings enter the script only as Python literals (``pprint.pformat`` of plain data:
``repr`` of every string), so a path with quotes, spaces, newlines or Chinese characters can neither
break the script nor inject code. The generated text is compiled before it is written.

The scripts' comments and docstrings are in the current language (core/i18n.py): a template holds
markers, ``# {{#key}}`` for a comment and a docstring that holds only ``{{#key}}``, and the English text of
each key is an ``N_()`` string of :data:`COMMENTS` (the shared part) or of its backend's spec
(``template_comments``); :func:`render_comments` puts in the translation, wrapped to the line width
with the marker's indentation. The code itself is the same in every language.
"""
from __future__ import annotations

import os
import pprint
import re
import stat
import textwrap
import unicodedata
from typing import Dict, List, Mapping, Optional, Tuple

from .i18n import N_, _
from .errors import QatError
from .io import atomic_write_text
from .model_build import is_weights_name
from .settings import Settings, save

MARKER = "{{SETTINGS}}"
FRAGMENTS = {
    "{{SAFE_LOAD}}": "safe_load.py",  # core/safe_load.py verbatim: the script refuses what qat-tui refuses
    "{{COMMON}}": os.path.join("templates", "script_common.py.txt"),
    # inside COMMON (replaced after it): the same transforms and the same model building as qat-tui
    "{{TRANSFORMS}}": "image_transforms.py",
    "{{MODEL_BUILD}}": "model_build.py",
}
"""Source inserted into every template: the loaders that never run code from a file, and what both
scripts share (CIFAR batches, the run-folder guard, data layouts, transforms, model building)."""

COMMENTS: Dict[str, str] = {
    'common.guard_run_dir': N_('Never write over a qat-tui run folder: its state.json records the checksum of every file its stages wrote, and this script would replace them behind its back.'),
    'common.load_state': N_('A state_dict saved by this script, loaded without running code from the file (load_tensors).'),
    'common.cifar_batches': N_("cifar-10-batches-py as torchvision's CIFAR10 reads it, unpickled with load_pickled_arrays (arrays and lists only: a crafted batch cannot run code) and without the md5 check (batches rebuilt from images have other checksums; their shape is checked instead)."),
    'common.load_image': N_("ImageFolder's loader, naming the file when it cannot be read (a truncated JPEG)."),
    'common.fail': N_("Stop with qat-tui's message for a ModelBuildError (what was wrong, then what to do)."),
    'common.find_layout': N_("('cifar-python', parent of cifar-10-batches-py, None) or ('imagefolder', folder, val/test dir name)."),
    'common.subset': N_('A seeded random subset of n images (all when n is None), as qat-tui draws it.'),
    'common.drop_bad_images': N_('[data] skip_bad_images: leave out the images PIL cannot decode, and say how many.'),
    'common.data': N_("The run's images as qat-tui reads them: the same layouts, classes, transforms and subsets.\n\nnormalize: the backend's own input transform after ToTensor (None: Normalize with [data] mean/std, or the defaults qat-tui picks - resolve_mean_std)."),
    'common.example': N_('8 test images, float32 (8, 3, S, S) with S = [data] image_size: the example input for tracing.'),
    'common.new_float_model': N_('The float model qat-tui builds ([model] arch or builder, with kwargs), freshly initialised, with quant run on its input and dequant on its output (make_qat_ready).'),
    'common.load_pretrained': N_("[model] pretrained (a state_dict file, or torchvision's named weights from the hub cache) into model: tensors whose name and shape fit; the others (another classifier) stay fresh, and are named."),
    'common.settings': N_("Written by qat-tui from the wizard's choices. Edit here, or in qat-tui and export again."),
}
"""The comments of ``templates/script_common.py.txt`` (and the settings comment every template has), by
marker key; a backend's own are its spec's ``template_comments``."""

COMMENT_WIDTH = 104
"""Terminal cells a rendered comment or docstring line may take (a CJK character takes two)."""

_MARKER_LINE = re.compile(r'^([ \t]*)(# |""")\{\{#([A-Za-z0-9_.]+)\}\}(""")?[ \t]*$', re.M)


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap(text: str, width: int) -> List[str]:
    """``text`` in lines of at most ``width`` cells: at spaces, and between CJK characters (which have
    none); a word longer than the width stays whole."""
    if _cells(text) == len(text):
        return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]
    tokens = re.findall(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]|[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+|\s+",
                        text)
    lines: List[str] = []
    line = ""
    for tok in tokens:
        if tok.isspace():
            if line:
                line += " "
            continue
        if line and _cells(line) + _cells(tok) > width:
            lines.append(line.rstrip())
            line = ""
        line += tok
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _docstring_lines(text: str, width: int) -> List[str]:
    """The lines of a docstring's text: paragraphs (separated by a blank line) wrapped to ``width``; a
    paragraph whose lines all start with four spaces (a command listing) kept as it is."""
    out: List[str] = []
    for i, para in enumerate(re.split(r"\n[ \t]*\n", text.strip("\n"))):
        if i:
            out.append("")
        lines = para.split("\n")
        if all(line.startswith("    ") for line in lines):
            out.extend(lines)
        else:
            out.extend(_wrap(" ".join(line.strip() for line in lines), width))
    return out


def render_comments(template: str, comments: Mapping[str, str], width: int = COMMENT_WIDTH) -> str:
    """``template`` with each comment marker (``# {{#key}}``) and docstring marker (``\"\"\"{{#key}}\"\"\"``)
    replaced by ``comments[key]`` in the current language, wrapped to ``width`` cells with the marker's
    indentation.

    Raises:
        QatError: a marker whose key ``comments`` does not hold (a template and its table disagree).
    """
    def replace(m: "re.Match[str]") -> str:
        indent, kind, key = m.group(1), m.group(2), m.group(3)
        if key not in comments:
            raise QatError("template comment {{#%s}} has no text in the comment tables" % key, title="Export")
        text = _(comments[key])
        if kind == "# ":
            return "\n".join(indent + "# " + line for line in _wrap(text, width - len(indent) - 2))
        room = width - len(indent) - 3  # the opening quotes
        lines = _docstring_lines(text, room)
        lines[0] = '"""' + lines[0]
        if _cells(lines[-1]) + 3 > room + (3 if len(lines) == 1 else 0):
            lines.append("")  # the closing quotes on a line of their own
        lines[-1] += '"""'
        return "\n".join((indent + line) if line else "" for line in lines)

    return _MARKER_LINE.sub(replace, template)


def render_script(settings: Settings) -> str:
    """The script text for ``settings`` (its backend's template with the settings baked in).

    Raises:
        QatError: the backend has no template or refuses these settings (its spec's
            ``export_problem``), or the rendered text does not compile (a bug).
    """
    from .backends import get_spec

    spec = get_spec(settings.run.backend)
    problem = spec.export_problem(settings)
    if problem is not None:
        raise problem
    path = spec.template_path()
    if path is None:
        raise QatError(_("the %s backend has no script template") % settings.run.backend,
                       hint=_("run it with qat-tui run --config FILE instead"), title="Export")
    name = os.path.basename(path)
    with open(path, "r", encoding="utf-8") as f:
        template = f.read()
    if template.count(MARKER) != 1:
        raise QatError(_("template %s must hold %s exactly once") % (name, MARKER), title="Export")
    data = with_absolute_paths(settings).model_dump(mode="python")
    if data["data"]["num_workers"] == "auto":  # the scripts take a number: what qat-tui would use here
        from .data import resolve_num_workers

        data["data"]["num_workers"] = resolve_num_workers(settings.data)
    literal = pprint.pformat(data, width=100, sort_dicts=False)
    here_core = os.path.dirname(os.path.abspath(__file__))
    for marker, rel in FRAGMENTS.items():
        with open(os.path.join(here_core, rel), "r", encoding="utf-8") as f:
            template = template.replace(marker, f.read().strip("\n"))
    # {{FILE:name.py}}: a self-contained file beside the template (the backend's own shared code), verbatim
    folder = os.path.dirname(path)

    def beside(m: "re.Match[str]") -> str:
        with open(os.path.join(folder, m.group(1)), "r", encoding="utf-8") as f:
            return f.read().strip("\n")

    template = re.sub(r"\{\{FILE:([A-Za-z0-9_]+\.py)\}\}", beside, template)
    template = render_comments(template, dict(COMMENTS, **spec.template_comments))
    text = template.replace(MARKER, literal)
    try:
        compile(text, "<exported script>", "exec")
    except SyntaxError as e:  # pragma: no cover - guards the templates
        raise QatError(_("the exported script does not compile: %s") % e, title="Export") from None
    return text


def with_absolute_paths(settings: Settings) -> Settings:
    """A copy of ``settings`` whose run folder, data folder, builder file and pretrained weights file are absolute,
    resolved the way qat-tui resolves them (against the current directory, ``~`` expanded), so an
    exported script and its TOML work from any directory and agree with each other."""

    def absolute(p: Optional[str]) -> Optional[str]:
        return os.path.abspath(os.path.expanduser(p)) if p else p

    return settings.model_copy(
        update={
            "run": settings.run.model_copy(update={"run_dir": absolute(settings.run.run_dir)}),
            "data": settings.data.model_copy(update={"root": absolute(settings.data.root)}),
            "model": settings.model.model_copy(update={
                "pretrained": settings.model.pretrained if is_weights_name(settings.model.pretrained)
                else absolute(settings.model.pretrained),
                "builder": _absolute_builder(settings.model.builder)}),
        }
    )


def _absolute_builder(builder: Optional[str]) -> Optional[str]:
    """``"net.py:build"`` -> ``"/abs/net.py:build"`` (a file builder; a module path stays as it is)."""
    if not builder:
        return builder
    target, _sep, fn = builder.rpartition(":")
    if target.endswith(".py") or "/" in target or os.sep in target:
        return "%s:%s" % (os.path.abspath(os.path.expanduser(target)), fn)
    return builder


def script_run_dir(script_path: str) -> str:
    """The folder an exported script writes into by default: ``<script stem>_run`` beside it, never the
    qat-tui run folder it was exported from (the script would write over files whose checksums qat-tui
    recorded)."""
    return os.path.splitext(os.path.abspath(script_path))[0] + "_run"


def export_script(settings: Settings, path: str) -> Tuple[str, str]:
    """Write the script to ``path`` (executable) and the settings TOML beside it (``<stem>.toml``).

    The script's run folder is :func:`script_run_dir` (``--run-dir`` changes it; it refuses a folder
    that holds a qat-tui ``state.json``); the TOML keeps the qat-tui run folder, so that
    ``qat-tui run --config <stem>.toml`` continues the run it came from.

    Returns:
        ``(script path, toml path)``, both absolute.
    """
    path = os.path.abspath(os.path.expanduser(path))
    settings = with_absolute_paths(settings)
    own = settings.model_copy(update={"run": settings.run.model_copy(update={"run_dir": script_run_dir(path)})})
    text = render_script(own)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(path, text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    toml_path = os.path.splitext(path)[0] + ".toml"
    save(settings, toml_path)
    return path, toml_path
