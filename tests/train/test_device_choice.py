"""The config's device: ``auto`` defers to GPUNET_DEVICE (an explicit device wins), and says what it chose once."""
from pathlib import Path

import pytest

import gpunet
from gpunet.cli import main

AUTO = (Path(__file__).resolve().parents[1] / "fixtures" / "xor_auto.yaml").read_text(encoding="utf-8")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "auto.yaml"
    path.write_text(AUTO)
    return str(path)


@pytest.fixture(autouse=True)
def _back_to_cpu():
    yield
    gpunet.set_device("cpu")


def gpunet_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_auto_defers_to_the_environment_variable(config, capsys, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", "cuda-emu")
    status, out, err = gpunet_cli(capsys, "summary", config, "--input-shape", "2")
    assert status == 0, err
    assert "device cuda-emu:0" in out.splitlines()[0]
    assert err.splitlines() == ["gpunet: device auto -> cuda-emu:0 (GPUNET_DEVICE=cuda-emu)"]


def test_an_explicit_device_in_the_config_or_an_override_wins(config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", "cuda-emu")
    status, out, err = gpunet_cli(capsys, "summary", config, "device=cpu", "--input-shape", "2")
    assert status == 0 and "device cpu" in out.splitlines()[0] and err == ""
    in_file = tmp_path / "cpu.yaml"
    in_file.write_text(AUTO.replace("device: auto", "device: cpu"))
    status, out, err = gpunet_cli(capsys, "summary", in_file, "--input-shape", "2")
    assert status == 0 and "device cpu" in out.splitlines()[0] and err == ""


@pytest.mark.parametrize("value", [None, "", "auto"])
def test_without_the_variable_auto_chooses_itself(value, config, capsys, monkeypatch):
    if value is None:
        monkeypatch.delenv("GPUNET_DEVICE", raising=False)
    else:
        monkeypatch.setenv("GPUNET_DEVICE", value)
    monkeypatch.setattr(gpunet.backend.device, "cuda_unavailable_reason", lambda index=0: "no GPU here (test)")
    status, out, err = gpunet_cli(capsys, "summary", config, "--input-shape", "2")
    assert status == 0 and "device cpu" in out.splitlines()[0]
    assert err.splitlines() == ["gpunet: device auto -> cpu (no GPU here (test))"]


def test_a_bad_variable_is_named(config, capsys, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", "gpu")
    status, out, err = gpunet_cli(capsys, "summary", config, "--input-shape", "2")
    assert status == 1 and out == "" and "Traceback" not in err
    assert err.startswith("gpunet summary: error: GPUNET_DEVICE=gpu (used because the config's device is auto): "
                          "unknown device 'gpu'") and err.rstrip().endswith("or unset GPUNET_DEVICE")


@pytest.mark.parametrize("variable", [None, "cpu"])
def test_a_sweep_says_what_auto_chose_once(variable, config, tmp_path, capsys, monkeypatch):
    if variable is None:
        monkeypatch.delenv("GPUNET_DEVICE", raising=False)
    else:
        monkeypatch.setenv("GPUNET_DEVICE", variable)
    status, out, err = gpunet_cli(capsys, "sweep", config, "--grid", "optimizer.lr=0.1,0.5", "--grid",
                                  "optimizer.weight_decay=0,1e-3", "--out", tmp_path / "sw")
    assert status == 0, err
    assert '"runs": 4' in out.splitlines()[-1]
    announced = [line for line in err.splitlines() if line.startswith("gpunet: device auto -> ")]
    assert len(announced) == 1 and announced[0].startswith("gpunet: device auto -> cpu (")
    if variable:
        assert announced == ["gpunet: device auto -> cpu (GPUNET_DEVICE=cpu)"]
