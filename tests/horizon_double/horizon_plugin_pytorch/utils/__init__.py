"""TEST DOUBLE of ``horizon_plugin_pytorch.utils`` (Horizon Robotics' QAT plugin): only what the double
needs - ``typeguard.typechecked``, the decorator the plugin's fake_quantize.py and qconfig.py import from
``horizon_plugin_pytorch.utils.typeguard`` (read_file ids 31843094239, 31499793000)."""
