"""Every WAKESERVE_* variable the docs name is a settings field, and every field is documented."""

from __future__ import annotations

import re
from pathlib import Path

from events.settings import EventSettings
from functions.settings import PredictorSettings
from scalers.external import ScalerSettings
from wakeserve.settings import UpSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
FIELDS = {
    f"WAKESERVE_{name.upper()}"
    for cls in (PredictorSettings, EventSettings, UpSettings, ScalerSettings)
    for name in cls.model_fields
}


def test_documented_variables_are_fields_and_fields_are_documented():
    documented = set(re.findall(r"WAKESERVE_[A-Z0-9_]+", DOC.read_text())) - {"WAKESERVE_"}
    assert documented - FIELDS == set()
    assert FIELDS - documented == set()


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("WAKESERVE_PAYLOAD_BUCKETS", "a, b,,c")
    monkeypatch.setenv("WAKESERVE_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("WAKESERVE_KAFKA_SASL_PASSWORD", "hunter2-not-real")
    settings = EventSettings()
    assert settings.allowed_buckets == frozenset({"a", "b", "c"})
    assert settings.max_in_flight == 7
    config = settings.kafka_config()
    assert config["sasl_plain_password"] == "hunter2-not-real" and "hunter2" not in repr(settings)
    assert settings.topics.requests("embedder") == "wakeserve.embedder.requests"
    assert settings.topics.group("embedder") == "wakeserve-embedder"
