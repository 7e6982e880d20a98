from dataclasses import dataclass, field

import pytest

from erpose.config import ConfigError, apply_overrides, dump_yaml, from_dict, load_yaml


@dataclass(frozen=True)
class Inner:
    gain: float = 1.0
    name: str = "a"


@dataclass(frozen=True)
class Outer:
    epochs: int = 3
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    optional: float | None = None
    band: tuple[float, int] = (2.0, 8)


def test_from_dict_coerces_and_rejects_unknown():
    cfg = from_dict(Outer, {"epochs": 5, "inner": {"gain": 2}, "sizes": [3]})
    assert cfg == Outer(epochs=5, inner=Inner(gain=2.0), sizes=(3,))
    with pytest.raises(ConfigError, match="epoch"):
        from_dict(Outer, {"epoch": 5})
    with pytest.raises(ConfigError, match="epochs"):
        from_dict(Outer, {"epochs": "many"})


def test_yaml_round_trip(tmp_path):
    cfg = Outer(epochs=7, flag=True, optional=0.5)
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Outer, tmp_path / "c.yaml") == cfg


def test_yaml_errors_name_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  gian: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*gian"):
        load_yaml(Outer, bad)


def test_overrides():
    cfg = apply_overrides(Outer(), ["inner.gain=0.25", "flag=true"])
    assert cfg.inner.gain == 0.25 and cfg.flag is True
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(Outer(), {"inner.nope": 1})


def test_fixed_length_tuple():
    cfg = from_dict(Outer, {"band": [1, 3]})
    assert cfg.band == (1.0, 3) and isinstance(cfg.band[0], float)
    with pytest.raises(ConfigError, match="2 values"):
        from_dict(Outer, {"band": [1]})
