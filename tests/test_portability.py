"""The portability probe: deterministic under one setting, and the settings replace only the numeric variables."""

from __future__ import annotations

from fomaml_utils.tools import portability


def test_the_probe_gives_the_same_hash_twice_under_one_setting():
    first = portability.probe_hash(iterations=5)
    assert first == portability.probe_hash(iterations=5)
    assert len(first) == 16 and int(first, 16) >= 0


def test_the_probe_depends_on_the_weights_it_hashes():
    assert portability.probe_hash(iterations=5) != portability.probe_hash(iterations=6)


def test_a_setting_sets_its_variables_and_removes_the_others(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    own = portability.setting_environment("as installed")
    assert "MKL_CBWR" not in own and "ATEN_CPU_CAPABILITY" not in own and own["SOMETHING_ELSE"] == "kept"
    scalar = portability.setting_environment("ATEN_CPU_CAPABILITY=default")
    assert scalar["ATEN_CPU_CAPABILITY"] == "default" and "MKL_CBWR" not in scalar


def test_there_are_at_least_three_settings_and_the_first_is_the_machines_own():
    assert len(portability.SETTINGS) >= 3
    assert list(portability.SETTINGS.values())[0] == {}
    assert all(set(env) <= set(portability.NUMERIC_VARIABLES) for env in portability.SETTINGS.values())


def test_on_x86_64_with_mkl_every_setting_must_change_the_bits(monkeypatch):
    import torch

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: True)
    assert portability.settings_must_differ()
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    assert not portability.settings_must_differ()


def test_settings_that_repeat_the_bits_are_skipped_or_an_error_depending_on_the_machine(monkeypatch, capsys):
    monkeypatch.setattr(portability, "probe_all", lambda: dict.fromkeys(portability.SETTINGS, "0123456789abcdef"))
    monkeypatch.setattr(portability, "settings_must_differ", lambda: False)
    assert portability.main([]) == 0
    assert "are skipped" in capsys.readouterr().out
    monkeypatch.setattr(portability, "settings_must_differ", lambda: True)
    assert portability.main([]) == 1
    assert "should change the float results" in capsys.readouterr().out
