"""`edgetrain run --memory-map`: the C core over an emulated NVM; report keys from the emulator's
counters checked against independent figures; fit checks; worn cells in the run JSON."""
from __future__ import annotations

import json

import pytest

from edgetrain import cli
from edgetrain.backends import c_plan
from edgetrain.config import TrainConfig
from edgetrain.model.presets import preset

RRAM_FJ_PER_BIT = 10900  # firmware_sim/data/technologies.toml: rram program_energy 10.9 pJ/bit

EMULATOR_KEYS = {"nvm_energy_j", "physical_write_density", "physical_max_writes_per_cell", "physical_total_cell_writes",
                 "bits_flipped", "projected_lifetime_days", "worn_cells", "worn_reports", "commits", "commits_lost",
                 "physical_writes", "memory_map", "technology", "samples_per_day"}


def run_json(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "report.json"
    assert cli.main(["run", *args, "--json", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_memory_map_report(tmp_path, capsys, mnist_dir):
    common = ["--model", "mcu-cnn", "--samples", "60", "--seed", "2", "--data-dir", str(mnist_dir)]
    plain = run_json(tmp_path, capsys, *common)
    twin = run_json(tmp_path, capsys, *common, "--backend", "numpy")
    plots = tmp_path / "plots"
    emu = run_json(tmp_path, capsys, *common, "--memory-map", "rram-mcu", "--plots", str(plots))
    assert EMULATOR_KEYS <= set(emu)
    # The same logical model whatever the NVM: the hash, the accuracy, the logical write counts, which keep
    # their keys (max_writes_per_cell means logical writes with or without a map).
    assert emu["weights_sha256"] == plain["weights_sha256"] == twin["weights_sha256"]
    assert emu["accuracy"] == plain["accuracy"]
    for key in ("total_cell_writes", "max_writes_per_cell", "write_density", "other_cell_writes"):
        assert emu[key] == plain[key], key
    # Physical figures: the HAL's per-byte counts against the commit's own byte count, energy from the
    # technology's figure, the breakdown adding up; every changed weight lands in two banks.
    phys = emu["physical_writes"]
    total = emu["physical_total_cell_writes"]
    assert total == emu["commit_bytes_programmed"]
    assert total == phys["total_writes_weight_banks"] + phys["total_writes_param_banks"] + phys["total_writes_records"] + phys["total_writes_other"]
    assert phys["total_writes_records"] == emu["commit_record_bytes"] == 16 * emu["commits"]
    assert emu["physical_max_writes_per_cell"] == max(v for k, v in phys.items() if k.startswith("max_writes"))
    assert emu["nvm_energy_j"] == pytest.approx(total * 8 * RRAM_FJ_PER_BIT * 1e-15)
    n_weights = preset("mcu-cnn").n_weights()
    assert emu["physical_write_density"] == pytest.approx(total / (n_weights * 60))
    assert phys["total_writes_weight_banks"] >= emu["total_cell_writes"]
    assert emu["worn_cells"] == emu["worn_reports"] == emu["commits_lost"] == 0
    assert emu["aux_bytes"] == emu["plan"]["total"] and emu["plan"]["commit"] == 16
    assert emu["samples_per_day"] == 1440 and emu["projected_lifetime_days"] > 0
    # Lifetime scales with the samples a day.
    slow = run_json(tmp_path, capsys, *common, "--memory-map", "rram-mcu", "--samples-per-day", "144")
    assert slow["projected_lifetime_days"] == pytest.approx(10 * emu["projected_lifetime_days"])
    # Plots: a heat map per layer with weights and a histogram.
    files = sorted(p.name for p in plots.iterdir())
    assert files == ["wear_00_conv1.png", "wear_02_conv2.png", "wear_06_fc1.png", "wear_07_fc2.png", "writes_histogram.png"]
    assert all((plots / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


def test_console_summary_shows_the_emulator_figures(capsys, mnist_dir):
    assert cli.main(["run", "--model", "mlp", "--samples", "30", "--data-dir", str(mnist_dir), "--memory-map", "rram-mcu",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "max writes per cell" in out[0] and "(last 500" not in out[0]  # 30 < 500 samples
    assert out[1].startswith("rram-mcu (rram): NVM energy ") and "projected lifetime" in out[1] and "worn cells 0" in out[1]


def test_flash_map_trains_the_same_model(tmp_path, capsys, mnist_dir):
    common = ["--model", "mlp", "--samples", "20", "--seed", "1", "--data-dir", str(mnist_dir)]
    plain = run_json(tmp_path, capsys, *common)
    flash = run_json(tmp_path, capsys, *common, "--memory-map", "flash-mcu")
    assert flash["weights_sha256"] == plain["weights_sha256"]
    assert flash["plan"]["commit"] == 2048 and flash["aux_bytes"] == plain["aux_bytes"] - 16 + 2048  # a page of staging
    assert flash["technology"] == "flash" and flash["nvm_energy_j"] > 0


def test_worn_cells_are_counted_in_the_run_json(tmp_path, capsys, mnist_dir):
    worn = tmp_path / "worn.toml"
    worn.write_text(
        'name = "worn-rram"\n'
        '[[region]]\nname = "nvm"\nkind = "nvm"\ntechnology = "rram"\nbase = 0x08000000\nsize = "256 KiB"\n'
        '[region.technology_overrides]\nendurance = 20\nendurance_sigma = 0.0\n'
        '[[region]]\nname = "sram"\nkind = "sram"\nbase = 0x20000000\nsize = "64 KiB"\n')
    r = run_json(tmp_path, capsys, "--model", "mlp", "--samples", "120", "--data-dir", str(mnist_dir), "--memory-map", str(worn))
    assert r["samples"] == 120 and r["memory_map"] == "worn-rram"
    assert r["worn_cells"] > 0 and r["worn_reports"] > 0  # cells wore out; the run went on to the end
    assert r["projected_lifetime_days"] < 1


@pytest.mark.parametrize("args, message", [
    (["--model", "mlp", "--memory-map", "rram-mcu", "--backend", "numpy"], "use --backend c"),
    (["--model", "mlp", "--plots", "out"], "--plots needs --memory-map"),
    (["--model", "mlp", "--samples-per-day", "10"], "--samples-per-day needs --memory-map"),
    (["--model", "mlp", "--memory-map", "rram-mcu", "--samples-per-day", "0"], "argument --samples-per-day: 0.0 must be > 0"),
    (["--model", "mlp", "--memory-map", "no-such.toml"], "memory map file 'no-such.toml' does not exist"),
])
def test_memory_map_errors_are_one_clear_line(capsys, mnist_dir, args, message):
    assert cli.main(["run", *args, "--samples", "5", "--data-dir", str(mnist_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetrain run: error:") and message in err


def _map(tmp_path, nvm: str, sram: str):
    path = tmp_path / "small.toml"
    path.write_text(
        f'name = "small"\n[[region]]\nname = "nvm"\nkind = "nvm"\ntechnology = "rram"\nbase = 0x08000000\nsize = "{nvm}"\n'
        f'[[region]]\nname = "sram"\nkind = "sram"\nbase = 0x20000000\nsize = "{sram}"\n')
    return str(path)


def test_arena_and_model_must_fit_the_map(tmp_path, capsys, mnist_dir):
    common = ["run", "--model", "mcu-cnn", "--samples", "5", "--data-dir", str(mnist_dir), "--no-progress"]
    assert cli.main([*common, "--memory-map", _map(tmp_path, "512 KiB", "16 KiB")]) == 2
    err = capsys.readouterr().err
    arena = c_plan(preset("mcu-cnn", 0), TrainConfig())["total"]  # the default sgd run's arena (et_plan)
    assert arena > 16384
    assert f"the training arena needs {arena} bytes but SRAM region 'sram' has 16384" in err
    # mcu-cnn: 27,464 weight bytes in the image, and two banks of each tensor in the training area
    assert cli.main([*common, "--memory-map", _map(tmp_path, "64 KiB", "64 KiB")]) == 2
    err = capsys.readouterr().err
    assert "but NVM region 'nvm' has 65536; use a smaller model or a larger NVM region" in err
