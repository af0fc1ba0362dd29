"""Export the chosen settings as one standalone, commented Python script (and the settings TOML).

The script uses the chosen backend's API directly - each backend brings its template (its spec's
``template``, beside its module) - and runs stage by stage: ``python FILE --stage float|calib|qat|int_infer|compile``.

Values from the settings enter the script only as Python literals (``pprint.pformat`` of plain data:
``repr`` of every string), so a path with quotes, spaces, newlines or Chinese characters can neither
break the script nor inject code. The generated text is compiled before it is written.
"""
from __future__ import annotations

import os
import pprint
import re
import stat
from typing import Optional, Tuple

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
        raise QatError("the %s backend has no script template" % settings.run.backend,
                       hint="run it with qat-tui run --config FILE instead", title="Export")
    name = os.path.basename(path)
    with open(path, "r", encoding="utf-8") as f:
        template = f.read()
    if template.count(MARKER) != 1:
        raise QatError("template %s must hold %s exactly once" % (name, MARKER), title="Export")
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
    text = template.replace(MARKER, literal)
    try:
        compile(text, "<exported script>", "exec")
    except SyntaxError as e:  # pragma: no cover - guards the templates
        raise QatError("the exported script does not compile: %s" % e, title="Export") from None
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
