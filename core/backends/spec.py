"""What qat-tui knows of a backend before its toolchain is imported: a :class:`BackendSpec`.

A backend package exposes one spec object and registers it under the entry point group
``qat_tui.backends`` (the built-in ones in qat-tui's ``pyproject.toml``; another package in its own)::

    [project.entry-points."qat_tui.backends"]
    torch = "core.backends.torch_pt2e:SPEC"

The spec's module must import nothing heavy (no torch, no toolchain): the CLI and the wizard list
backends, their settings sections and their choices at start-up. The spec says

* its name (the ``[run] backend`` value), a one-line summary, and where its implementation is
  (``factory``: ``"module:callable"`` taking the settings and returning a
  :class:`~core.backends.base.QuantBackend`, imported when a run starts);
* its own settings section (``options``: a pydantic model; TOML table ``[<name>]``), and which keys of
  it make which stage stale (``stale_keys``); each field's ``json_schema_extra={"step": ...}`` names the
  wizard step that shows it (``backend``, ``qconfig`` or ``compile``);
* which core ``[compile]`` keys it uses (``compile_keys``: the wizard shows only those);
* the choices it offers for the current values (:meth:`BackendSpec.choices`: marches, calibration
  observers, compile options, each with a line of help), and how it detects its toolchain;
* its export script template (``template``, a file beside the spec's module), if it has one.

Modelled on Harlequin's adapter plugins (``src/harlequin/plugins.py``: entry points listed without
importing the adapter; ``ADAPTER_OPTIONS`` drive both CLI flags and widgets).
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

from ..i18n import _
from .base import BackendInfo

ENTRY_POINT_GROUP = "qat_tui.backends"

Choices = Dict[Tuple[str, str], Dict[str, str]]
"""``{(section, key): {value: one line of help}}``: the values a backend offers for a setting."""


@dataclass
class BackendSpec:
    """A backend as the registry, the settings schema and the wizard see it (subclass to override
    :meth:`detect`, :meth:`choices` and :meth:`check`).

    Attributes:
        name: the ``[run] backend`` value and, when ``options`` is set, its TOML section's name.
        summary: one line: what toolchain, what the deployable is.
        factory: ``"module:callable"``: ``callable(settings) -> QuantBackend``.
        options: the backend's settings section (a pydantic model with defaults for every field).
        stale_keys: stage -> keys of its section (or ``"*"``) whose change makes that stage stale.
        compile_keys: the core ``[compile]`` keys its compile stage reads.
        template: file name of its export-script template, beside the spec's module (None: no export).
        preferred: the wizard defaults to the available backend with the highest value.
        step_notes: wizard step name -> paragraphs the step shows for this backend (``N_()``-marked:
            the wizard shows them translated).
        template_comments: the English text of each comment marker of its template (``# {{#key}}``,
            ``\"\"\"{{#key}}\"\"\"``), ``N_()``-marked; the exported script has them in the current language
            (:func:`core.export.render_comments`).
    """

    name: str
    summary: str
    factory: str
    options: Optional[Type[Any]] = None
    stale_keys: Dict[str, Any] = field(default_factory=dict)
    compile_keys: Tuple[str, ...] = ()
    template: Optional[str] = None
    preferred: int = 0
    step_notes: Dict[str, List[str]] = field(default_factory=dict)
    template_comments: Dict[str, str] = field(default_factory=dict)
    module_dir: str = ""

    def create(self, settings: Any = None) -> Any:
        """The backend instance for ``settings`` (imports the implementation and its toolchain)."""
        module, _sep, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)(settings)

    def detect(self) -> BackendInfo:
        """Whether the toolchain imports here, with versions or the reason it does not (imports it)."""
        return BackendInfo(self.name, True, "", {}, _(self.summary))

    def choices(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Choices:
        """The values this backend offers for settings, given the current ``values`` (the shape of
        ``Settings.model_dump()``) and what :meth:`detect` found (None before detection). Pure and
        cheap: the wizard calls it on its UI thread whenever a value changes."""
        return {}

    def check(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Optional[str]:
        """Why these values cannot run with this backend (one message), or None. Called by the wizard
        before a run; the pipeline checks again through the backend's ``validate_settings``."""
        return None

    def export_problem(self, settings: Any) -> Optional[Any]:
        """Why these settings cannot be exported as a script (a :class:`core.errors.QatError`), or None."""
        return None

    def result_lines(self, metrics: Dict[str, Any], settings: Any) -> List[Tuple[str, str]]:
        """``(label, text)`` lines the results screen shows for the compile stage's ``metrics`` (what
        the backend's perf step recorded: latency, FPS, ...); empty when there is nothing to say."""
        return []

    def template_path(self) -> Optional[str]:
        return os.path.join(self.module_dir, self.template) if self.template else None


def spec_of(module_name: str, spec: BackendSpec) -> BackendSpec:
    """``spec`` with ``module_dir`` set to the folder of ``module_name`` (for its template)."""
    spec.module_dir = os.path.dirname(os.path.abspath(sys.modules[module_name].__file__ or "."))
    return spec


__all__ = ["BackendSpec", "Choices", "ENTRY_POINT_GROUP", "spec_of"]
