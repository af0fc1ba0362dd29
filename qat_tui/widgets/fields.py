"""One settings field (core or a backend's section): a label and an input on one row, its one line of
help, and an inline error.

The kind of input follows the pydantic field's type: a checkbox for booleans, a select for ``Literal``
choices, a text input otherwise (numbers and lists are typed as text and parsed by pydantic, so
``validate()`` names the key and the problem: ``float.epochs = 'abc': input should be a valid integer``).
An empty text box means "unset" for optional fields.

Nothing here imports torch.
"""
from __future__ import annotations

import re
import typing
from typing import Any, Dict, List, Optional, Sequence, Tuple

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from core.errors import SettingsError
from core.i18n import _
from core.settings import field_choices, field_help, section_model, validate

BOOL, CHOICE, TEXT, OPT_TEXT, INT, OPT_INT, FLOAT, INT_LIST, FLOAT_LIST, TABLE = (
    "bool", "choice", "text", "opt_text", "int", "opt_int", "float", "int_list", "float_list", "table",
)


def field_kind(section: str, key: str) -> str:
    """The input kind for ``[section] key``, from its pydantic annotation."""
    ann = section_model(section).model_fields[key].annotation
    if field_choices(section, key) is not None:
        return CHOICE
    optional = False
    if typing.get_origin(ann) is typing.Union:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        optional = len(args) < len(typing.get_args(ann))
        ann = args[0] if len(args) == 1 else ann
    if ann is bool:
        return BOOL
    if ann is int:
        return OPT_INT if optional else INT
    if ann is float:
        return FLOAT
    if typing.get_origin(ann) in (list, List):
        return FLOAT_LIST if typing.get_args(ann) and typing.get_args(ann)[0] is float else INT_LIST
    if typing.get_origin(ann) in (dict, Dict):
        return TABLE
    return OPT_TEXT if optional else TEXT


def field_error(section: str, key: str, raw: Any) -> Tuple[Optional[str], Any]:
    """Validate one value on its own: ``(error message or None, parsed value)``.

    The message is the :class:`SettingsError` text of :func:`core.settings.validate`, which names the
    key, the value and what is allowed.
    """
    try:
        s = validate({section: {key: raw}}, source="invalid value", backend_offers=False)
    except SettingsError as e:
        return e.msg, None
    return None, getattr(getattr(s, section), key)


def display_value(value: Any) -> str:
    """How a settings value is shown in a text box."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return table_text(value)
    return str(value)


def table_text(value: Dict[str, Any]) -> str:
    """A dict as the inside of a TOML inline table: ``width = 8, name = "x"``."""
    import tomlkit

    inline = tomlkit.inline_table()
    inline.update(value)
    return inline.as_string().strip()[1:-1].strip()


def parse_table(text: str) -> Any:
    """``width = 8, name = "x"`` (braces optional) as a dict; the text itself when it does not parse
    (validation then names the key)."""
    import tomlkit

    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    try:
        return tomlkit.parse("v = {%s}" % body).unwrap()["v"]
    except Exception:
        return text


def step_fields(section: str, step: str) -> List[str]:
    """Keys of a backend's section whose field says it is shown on wizard step ``step``
    (``json_schema_extra={"step": ...}``), in declaration order."""
    out = []
    for key, f in section_model(section).model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if extra.get("step") == step:
            out.append(key)
    return out


def help_content(text: str, topic: str = "") -> Content:
    """A field's help line; with ``topic`` (the setting's key) followed by a "more" link that opens the
    step's help page at the section about it (the screen's ``help`` action, like ``?``)."""
    if not text or not topic:
        return Content(text or "")
    return Content.from_markup("$help [@click=screen.help(%r)]$more[/]" % topic, help=text, more=_("more"))


def not_offered(value: Any) -> str:
    """The label of a value the select does not offer (kept, so that nothing changes behind you)."""
    return _("{value} (not offered here)").format(value=value)


class SettingInput(Input):
    """A setting's text box. It leaves ``?`` to the screen, whose ``?`` binding opens the help page
    (:class:`~qat_tui.screens.base.HelpfulScreen`): Textual drops bindings of the keys a focused text box
    may type, and no setting's value holds a ``?`` (paths, numbers, a TOML table of model kwargs)."""

    def check_consume_key(self, key: str, character: Optional[str] = None) -> bool:
        if character == "?":
            return False
        return super().check_consume_key(key, character)


class SettingField(Vertical):
    """``[section] key`` as label + input, help line, and an error line shown only when invalid.

    Args:
        section, key: the settings field.
        value: its current value (typed, as in :class:`Settings`).
        label: text left of the input (default: the key).
        help: help line (default: the field's description).
        options: ``[(label, value)]`` for a select (default: the Literal choices).
        placeholder: shown in an empty text box.
        topic: what the help line's "more" link looks up in the step's help page (default: the key).
    """

    class Changed(Message):
        """The user changed the value (valid or not)."""

        def __init__(self, field: "SettingField") -> None:
            super().__init__()
            self.field = field

    def __init__(
        self,
        section: str,
        key: str,
        value: Any,
        *,
        label: Optional[str] = None,
        help: Optional[str] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
        placeholder: str = "",
        topic: Optional[str] = None,
    ) -> None:
        super().__init__(id="field-%s-%s" % (section, key), classes="field")
        self.section = section
        self.key = key
        self.kind = CHOICE if options is not None else field_kind(section, key)
        self._field_value = value
        self._field_label = label or key
        self._field_help = field_help(section, key) if help is None else help
        self._field_options: List[Tuple[str, Any]] = list(options) if options is not None else [
            (c, c) for c in (field_choices(section, key) or [])
        ]
        self.topic = key if topic is None else topic  # the help page's section the "more" link opens
        self._field_placeholder = placeholder or (_("unset") if self.kind in (OPT_INT, OPT_TEXT) else "")
        self.field_error_text: Optional[str] = None

    @property
    def control_id(self) -> str:
        return "%s--%s" % (self.section, self.key)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            if self.kind == BOOL:
                yield Checkbox(self._field_label, bool(self._field_value), id=self.control_id, compact=True)
                yield Label(self._bool_text(bool(self._field_value)), classes="bool-state")
            else:
                yield Label(self._field_label, classes="field-label")
                if self.kind == CHOICE:
                    options = list(self._field_options)
                    if self._field_value not in [v for _l, v in options]:
                        options.append((not_offered(self._field_value), self._field_value))
                    yield Select(options, value=self._field_value, allow_blank=False, id=self.control_id, compact=True)
                else:
                    yield SettingInput(
                        display_value(self._field_value), placeholder=self._field_placeholder, id=self.control_id, compact=True
                    )
        help_widget = Static(help_content(self._field_help, self.topic), classes="field-help")
        help_widget.display = bool(self._field_help)
        yield help_widget
        err = Static("", classes="field-error")
        err.display = False
        yield err

    # ------------------------------------------------------------------------------ value access
    @property
    def control(self) -> Any:
        return self.query_one("#" + self.control_id)

    def raw(self) -> Any:
        """The value as typed, in the form :func:`validate` accepts (strings are parsed there)."""
        c = self.control
        if self.kind == BOOL:
            return bool(c.value)
        if self.kind == CHOICE:
            return c.value
        text = c.value.strip()
        if self.kind in (OPT_INT, OPT_TEXT, FLOAT_LIST) and text == "":
            return None  # FLOAT_LIST: [data] mean/std, unset = chosen from the weights and the data
        if self.kind in (INT_LIST, FLOAT_LIST):
            return [p for p in re.split(r"[,\s]+", text) if p]
        if self.kind == TABLE:
            return parse_table(text) if text else {}
        return text

    def set_value(self, value: Any) -> None:
        """Show ``value`` (typed) in the input."""
        c = self.control
        if self.kind == BOOL:
            c.value = bool(value)
        elif self.kind == CHOICE:
            if value not in [v for _l, v in self._field_options]:
                self.set_options(self._field_options + [(not_offered(value), value)], value)
            else:
                c.value = value
        else:
            c.value = display_value(value)

    def set_options(self, options: Sequence[Tuple[str, Any]], value: Any = None) -> None:
        """Replace a select's options, keeping ``value`` (default: the current one) selected."""
        keep = self.raw() if value is None else value
        self._field_options = list(options)
        shown = list(options)
        if keep not in [v for _l, v in shown]:
            shown.append((not_offered(keep), keep))
        sel = self.control
        sel.set_options(shown)
        sel.value = keep

    def set_help(self, text: str) -> None:
        self._field_help = text
        h = self.query_one(".field-help", Static)
        h.update(help_content(text, self.topic))
        h.display = bool(text)

    def restore(self, typed: Any) -> None:
        """Put back what the control held (its ``value``, valid or not): after the screen was composed
        again, e.g. in another language."""
        c = self.control
        if self.kind == CHOICE and typed not in [v for _l, v in self._field_options]:
            self.set_options(self._field_options, typed)
        elif c.value != typed:
            c.value = typed
        if self.kind == BOOL:
            self.query_one(".bool-state", Label).update(self._bool_text(bool(typed)))

    def show_error(self, message: Optional[str]) -> None:
        """Show (or clear, with None) the inline error under the field."""
        self.field_error_text = message
        err = self.query_one(".field-error", Static)
        err.update(message or "")
        err.display = bool(message)
        self.set_class(bool(message), "-invalid")

    def check(self) -> Tuple[Optional[str], Any]:
        """Validate the typed value; show the error inline. Returns ``(error, parsed value)``."""
        err, value = field_error(self.section, self.key, self.raw())
        self.show_error(err)
        return err, value

    # ---------------------------------------------------------------------------------- events
    def _changed(self) -> None:
        if self.is_mounted:
            self.check()
            self.post_message(self.Changed(self))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

    @staticmethod
    def _bool_text(on: bool) -> str:
        return _("on") if on else _("off")

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        state = self.query_one(".bool-state", Label)
        state.update(self._bool_text(bool(event.value)))
        state.set_class(bool(event.value), "-on")
        self._changed()

    def on_mount(self) -> None:
        if self.kind == BOOL:
            self.query_one(".bool-state", Label).set_class(bool(self._field_value), "-on")
