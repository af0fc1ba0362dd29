"""Reusable widgets of the wizard: one settings field with its help and inline error."""
from .fields import SettingField, field_error

__all__ = ["SettingField", "field_error"]
