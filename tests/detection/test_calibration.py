"""Calibration files and detector settings: the contract's form, optional keys, errors naming keys."""

from __future__ import annotations

import pytest

from detection.calibration import Calibration, load_calibration
from detection.settings import DetectorSettings, describe, load_settings
from gateway.configfile import ConfigError


def write(tmp_path, text, name="cal.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_contract_form_with_uneven_rows(tmp_path):
    cal = load_calibration(write(tmp_path, "floors = [{floor = 1, y = 1250}, {floor = 2, y = 1190}, {floor = 3, y = 1133}]\n"))
    assert cal.height_at(1250) == pytest.approx(1.0)
    assert cal.height_at(1161.5) == pytest.approx(2.5)
    assert cal.floor_of(cal.height_at(1200)) == 1              # between floor 1's and floor 2's lines
    assert cal.floor_of(cal.height_at(1150)) == 2
    assert cal.y_at(3.0) == pytest.approx(1133)
    assert cal.height_at(1076) == pytest.approx(4.0)            # extrapolated with the top spacing
    assert cal.column_of(500) is None


def test_optional_columns_masks_and_size(tmp_path):
    cal = load_calibration(write(tmp_path, """
floors = [{floor = 3, y = 600}, {floor = 4, y = 500}, {floor = 5, y = 420}]
floor_height_m = 2.9
image_width = 1280
image_height = 720
columns = [{column = 1, x = 100}, {column = 2, x = 200}, {column = 3, x = 300}]
masks = [{x = 0, y = 0, width = 10, height = 5}, {polygon = [[20, 0], [30, 0], [30, 10]]}]
"""))
    assert cal.floor_height_m == 2.9 and cal.min_floor == 3
    assert cal.column_of(190) == 2 and cal.column_of(1000) is None
    m = cal.exclusion_mask(40, 20)
    assert m[0:5, 0:10].all() and not m[6, 0]
    assert m[1, 29] and not m[9, 21]                            # inside / outside the triangle
    half = cal.scaled(640, 360)
    assert half.y_at(4.0) == pytest.approx(250) and half.column_of(100) == 2


def test_errors_name_every_bad_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_calibration(write(tmp_path, """
floors = [{floor = 1, y = 500}, {floor = 2, y = 600}, {floor = "x", y = 1}]
columns = [{column = 1}]
colums = 3
"""))
    text = "\n".join(map(str, e.value.problems))
    assert "floors[2].floor" in text
    assert "must be above floor 1" in text                     # y grows downwards: floor 2 must have a smaller y
    assert "columns[0].x: is required" in text
    assert "colums: unknown key" in text


def test_missing_floors_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="floors: is required"):
        load_calibration(write(tmp_path, "image_width = 5\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_calibration(tmp_path / "nope.toml")


def test_to_toml_round_trip(tmp_path):
    cal = Calibration(floors=((1, 700.0), (2, 640.0), (3, 590.0)), columns=((1, 100.0), (2, 150.0)),
                      rects=((0, 0, 5, 5),), image_width=1280, image_height=720, columns_y=400.0,
                      vanishing_point=(640.0, -500.0))
    again = load_calibration(write(tmp_path, cal.to_toml()))
    assert again.floors == cal.floors and again.columns == cal.columns
    assert again.vanishing_point == cal.vanishing_point and again.rects == cal.rects


def test_settings_defaults_documented_and_loadable(tmp_path):
    docs = describe()
    assert all(doc for _, _, doc in docs) and len(docs) >= 30
    s = load_settings(write(tmp_path, "[detection]\npool_factor = 2\nshake_compensation = false\n", "s.toml"))
    assert s.pool_factor == 2 and not s.shake_compensation
    assert s.background_alpha == DetectorSettings().background_alpha
    top = load_settings(write(tmp_path, "noise_k = 4.0\n", "t.toml"))
    assert top.noise_k == 4.0


def test_settings_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, "pool_factor = 0\nnoise_k = 'high'\npool_facter = 2\n", "s.toml"))
    text = "\n".join(map(str, e.value.problems))
    assert "pool_factor: must be at least 1" in text
    assert "noise_k: expected a number" in text
    assert "pool_facter: unknown key" in text


def test_docs_settings_table_lists_every_setting_with_its_default():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "detection.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip(" `") for line in text.splitlines()
            if line.startswith("| `")}
    for name, default, _ in describe():
        assert name in rows, f"docs/detection.md has no row for {name}"
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert rows[name].strip("'") == shown, f"{name}: docs say {rows[name]}, the default is {default}"
