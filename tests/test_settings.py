"""Settings: defaults from Horizon's sample, TOML round trip with help comments, clear errors."""
import pytest

from core import settings as S
from core.errors import SettingsError


def test_defaults_follow_horizon_sample():
    s = S.Settings()
    assert (s.float.epochs, s.float.optimizer, s.float.lr, s.float.weight_decay) == (20, "adam", 1e-3, 2e-4)
    assert s.data.batch_size == 256
    assert (s.qat.epochs, s.qat.optimizer, s.qat.lr, s.qat.weight_decay) == (2, "sgd", 1e-4, 2e-4)
    assert s.calib.num_images is None  # all training images
    assert s.model.width_mult == 1.0 and s.model.arch == "mobilenet_v2"
    assert s.model.num_classes is None and s.data.image_size == 32  # classes from the data (CIFAR-10: 10), CIFAR-10 as it is
    assert s.enabled_stages() == list(S.STAGES)


def test_quick_preset_matches_the_issue():
    s = S.preset("quick")
    assert s.float.epochs == 1 and s.qat.epochs == 1
    assert s.data.train_images == 10000 and s.calib.num_images == 2000
    assert s.data.eval_images is None  # the full 10,000 test images


def test_toml_round_trip_keeps_values_and_writes_help(tmp_path):
    s = S.preset("quick", data={"root": "/data/中文 路径"}, run={"threads": 3})
    text = S.dumps(s)
    assert "# " + S.field_help("float", "epochs") in text
    assert "# eval_images = ...  (unset)" in text
    path = tmp_path / "s.toml"
    S.save(s, str(path))
    back = S.load(str(path))
    assert back == s
    assert back.data.root == "/data/中文 路径"
    assert back.data.eval_images is None


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(SettingsError) as e:
        S.loads("[float]\nepochz = 3\n", source="x.toml")
    msg = str(e.value)
    assert "x.toml" in msg and "'epochz'" in msg and "[float]" in msg
    assert "epochs" in msg and "lr_schedule" in msg  # the allowed keys are listed


def test_unknown_section_is_reported():
    with pytest.raises(SettingsError) as e:
        S.loads("[floats]\nepochs = 3\n")
    assert "'floats'" in str(e.value) and "qat" in str(e.value)


def test_bad_choice_names_allowed_values():
    with pytest.raises(SettingsError) as e:
        S.loads('[qconfig]\ncalib_observer = "entropy"\n')
    msg = str(e.value)
    assert "qconfig.calib_observer" in msg and "'entropy'" in msg
    assert "min_max" in msg and "mse" in msg


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[float]\nepochs = 0\n", "float.epochs"),
        ('[float]\nepochs = "ten"\n', "float.epochs"),
        ("[data]\nbatch_size = -1\n", "data.batch_size"),
        ('[run]\ndevice = "gpu2"\n', "run.device"),
        ("[compile]\nperf_batch_sizes = [0]\n", "compile.perf_batch_sizes"),
    ],
)
def test_bad_values_name_the_key(toml, key):
    with pytest.raises(SettingsError) as e:
        S.loads(toml)
    assert key in str(e.value)


def test_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(SettingsError) as e:
        S.loads("[float\nepochs = 1\n", source="broken.toml")
    assert "broken.toml is not valid TOML" in str(e.value)
    with pytest.raises(SettingsError) as e:
        S.load(str(tmp_path / "nope.toml"))
    assert "does not exist" in e.value.msg and e.value.hint


def test_unknown_preset():
    with pytest.raises(SettingsError) as e:
        S.preset("fast")
    assert "quick" in e.value.hint


def test_field_help_and_choices_for_the_wizard():
    from core.backends import specs

    # the calibration observers are the chosen backend's, each with its help
    defaults = S.Settings().model_dump()
    for name, spec in specs().items():
        observers = spec.choices(dict(defaults, run=dict(defaults["run"], backend=name)), None)[("qconfig", "calib_observer")]
        assert {"min_max", "mse"} <= set(observers) and all(observers.values()), name
    assert S.field_choices("data", "layout") == ["auto", "cifar-python", "imagefolder"]
    assert S.field_choices("float", "epochs") is None
    for section in S.all_sections():  # every backend's section too
        model = S.section_model(section)
        for key in model.model_fields:
            assert S.field_help(section, key), "%s.%s has no help line" % (section, key)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n"])
def test_empty_settings_file_is_refused_with_what_it_would_run(tmp_path, text):
    path = tmp_path / "empty.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as e:
        S.load(str(path))
    assert "holds no settings" in e.value.msg and "20 epochs on all 50,000" in e.value.msg
    assert "qat-tui preset quick -o FILE" in e.value.hint
    assert S.loads("[float]\nepochs = 1\n").float.epochs == 1  # one key is enough


def test_relative_paths_are_made_absolute_for_the_run_folder(tmp_path, monkeypatch):
    """The settings.toml a run writes into its folder must work from any folder (qat-tui debug RUN_DIR
    from elsewhere): relative data root, builder file and weights file become absolute; torchvision
    weight names and package.module builders stay as written."""
    from core.settings import validate, with_absolute_paths

    monkeypatch.chdir(tmp_path)
    s = with_absolute_paths(validate({"run": {"run_dir": "runs/x"}, "data": {"root": "imgs"},
                                      "model": {"builder": "nets/net.py:build", "pretrained": "w/start.pth"}}))
    # a relative run_dir read from elsewhere named another folder: "moved or copied from ..." for no move
    assert s.run.run_dir == str(tmp_path / "runs" / "x")
    assert s.data.root == str(tmp_path / "imgs")
    assert s.model.builder == str(tmp_path / "nets" / "net.py") + ":build"
    assert s.model.pretrained == str(tmp_path / "w" / "start.pth")
    kept = validate({"run": {"run_dir": str(tmp_path)}, "data": {"root": str(tmp_path)}, "model": {"builder": "mypkg.nets:build", "pretrained": "DEFAULT"}})
    assert with_absolute_paths(kept) is kept


def test_ui_keymap_round_trips_and_reruns_nothing():
    """``[ui] keymap`` (the wizard's keys): written and read back as a TOML table, its form checked here
    (the binding ids themselves by the wizard, which knows them), and no stage's result depends on it."""
    from core.pipeline import stage_settings

    s = S.preset("quick", ui={"keymap": {"wizard.next": "f5, ctrl+n", "app.quit": "ctrl+x"}})
    assert s.ui.keymap == {"wizard.next": "f5,ctrl+n", "app.quit": "ctrl+x"}
    text = S.dumps(s)
    assert '[ui]' in text and '"wizard.next" = "f5,ctrl+n"' in text
    assert "# " + S.field_help("ui", "keymap")[:40] in text
    assert S.loads(text).ui.keymap == s.ui.keymap
    assert S.Settings().ui.keymap == {} and "ui" in S.all_sections()
    plain = S.preset("quick")
    for stage in S.STAGES:
        assert stage_settings(s, stage) == stage_settings(plain, stage), stage
        assert not any(k.startswith("ui.") for k in stage_settings(s, stage))
    for bad, words in (({"Next": "f5"}, "'Next' is not a binding id"), ({"wizard.next": ""}, "comma-separated key names"),
                       ({"wizard.next": "f5,,n"}, "comma-separated key names"), ({"wizard.next": 5}, "ui.keymap.wizard.next")):
        with pytest.raises(SettingsError) as e:
            S.validate({"ui": {"keymap": bad}})
        assert words in e.value.msg
