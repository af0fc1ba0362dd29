"""The wizard with the horizon backend, on the test double of horizon_plugin_pytorch + hbdk: horizon is
the default when the plugin imports, march is offered from what the plugin defines, and a whole run ends
on a results screen with the captured check advice and perf figures."""
from __future__ import annotations

import os
import time
from typing import Any

import pytest

from core.settings import validate
from qat_tui.app import QatApp

from .conftest import tiny_settings_dict
from .test_app import SIZE, screen_name, text_of, wait_for

pytestmark = pytest.mark.usefixtures("horizon_double")


async def test_horizon_is_default_and_march_comes_from_the_plugin(cifar_python_root: str) -> None:
    app = QatApp(settings=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.detection is not None, 120, "detection")
        await pilot.pause()
        assert app.values["run"]["backend"] == "horizon"
        app.screen.get_field("data", "root").set_value(cifar_python_root)
        await pilot.pause()
        await pilot.press("ctrl+n", "ctrl+n")  # Data -> Model -> Backend
        assert screen_name(app) == "BackendScreen"
        await pilot.pause()
        status = text_of(app.screen.query_one("#detect-status"))
        assert "horizon" in status and "horizon_plugin_pytorch 1.9.0" in status and "hbdk 3.46.4" in status
        march = app.screen.get_field("horizon", "march")
        offered = [v for _label, v in march._field_options]
        assert {"bernoulli2", "bayes", "bayes-e"} <= set(offered)
        assert march.raw() == "bayes"
        await pilot.press("ctrl+n", "ctrl+n")
        assert screen_name(app) == "QconfigScreen"
        obs = app.screen.get_field("qconfig", "calib_observer")
        assert [v for _l, v in obs._field_options] == ["min_max", "percentile", "mse", "kl", "mix"]
        await pilot.press("ctrl+n")
        assert screen_name(app) == "CompileScreen"
        assert app.screen.get_field("horizon", "opt").raw() == "O1"
        assert "pyramid" in " ".join(text_of(w) for w in app.screen.query(".step-note"))
        # a nash (hbdk4) march offers the observers of hbdk4's get_qconfig
        await pilot.press("escape", "escape", "escape")
        assert screen_name(app) == "BackendScreen"
        app.screen.get_field("horizon", "march").set_value("nash-e")
        await pilot.pause()
        await pilot.press("ctrl+n", "ctrl+n")
        assert screen_name(app) == "QconfigScreen"
        await pilot.pause()
        obs = app.screen.get_field("qconfig", "calib_observer")
        assert [v for _l, v in obs._field_options] == ["min_max", "mse"]
        assert "MSEObserver" in text_of(app.screen.query_one("#observer-help"))


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_whole_horizon_run_shows_check_and_perf(cifar_python_root: str, tmp_path: Any) -> None:
    from textual.widgets import DataTable

    settings = validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "hz"), run={"backend": "horizon"}))
    app = QatApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.detection is not None, 120, "detection")
        for expected in ("DataScreen", "ModelScreen", "BackendScreen", "StagesScreen", "QconfigScreen", "CompileScreen"):
            assert screen_name(app) == expected
            await pilot.press("ctrl+n")
        assert screen_name(app) == "ReviewScreen"
        assert "[horizon]" in app.screen.toml_text and 'march = "bayes"' in app.screen.toml_text
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.run_screen is not None, 10, "the run screen")
        run = app.run_screen
        await wait_for(pilot, lambda: not run.running, 540, "the run to finish")
        assert run.record.finished is not None and run.record.finished.ok, run.record.failure
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen" and app.screen.query("#check-table"),
                       10, "the results screen")
        await pilot.pause()
        res = app.screen
        summary = text_of(res.query_one("#results-summary"))
        assert "BPU estimate (hbdk perf): FPS" in summary and "latency" in summary and "DDR" in summary
        assert "PASS" in text_of(res.query_one("#check-verdict"))
        names = [res.query_one("#artifact-table", DataTable).get_row_at(i)[0]
                 for i in range(res.query_one("#artifact-table", DataTable).row_count)]
        for name in ("int_model.pt", "model.hbm", "model.hbir", "model.pt", "check_report.txt", "perf.json", "model.svg"):
            assert name in names, names
        await pilot.press("3", "t")
        await pilot.pause()
        assert screen_name(app) == "TextModal"
        raw = app.screen.query_one("#text-body").text
        assert "HBDK model check PASS" in raw
        await pilot.press("escape")
        assert screen_name(app) == "ResultsScreen"
