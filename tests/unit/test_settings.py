import pytest
from pydantic import ValidationError

from service.settings import Settings, describe_settings


def test_defaults_run_everything_embedded() -> None:
    settings = Settings(_env_file=None)
    assert settings.uses_embedded_kafka and settings.uses_embedded_store
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.idempotent_producer is False


def test_a_real_kafka_gets_the_idempotent_producer() -> None:
    settings = Settings(kafka_bootstrap_servers="kafka:9092")
    assert settings.idempotent_producer is True


def test_system_categories_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEM_CATEGORY_IDS", "celebrity, vip ,")
    assert Settings().system_category_ids == ("celebrity", "vip")


def test_production_refuses_the_embedded_broker_and_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(ValidationError, match="KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI"):
        Settings(environment="production")


def test_commands_larger_than_a_face_event_can_carry_cannot_be_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_COMMAND_BYTES", str(512 * 1024))
    assert Settings().max_command_bytes == 512 * 1024
    monkeypatch.setenv("MAX_COMMAND_BYTES", str(512 * 1024 + 1))
    with pytest.raises(ValidationError, match="max_command_bytes"):
        Settings()


def test_the_mongodb_uri_is_not_printed_with_the_settings() -> None:
    settings = Settings(mongodb_uri="mongodb://user:secret@db:27017")
    assert "secret" not in repr(settings)


def test_help_describes_every_setting_with_its_default() -> None:
    described = describe_settings()
    for name in Settings.model_fields:
        assert f"  {name.upper()} " in described
    assert "80,443" in described


def test_fetches_wait_briefly_on_the_embedded_broker_and_as_kafka_does_on_a_real_one() -> None:
    assert Settings().fetch_max_wait_ms == 10
    assert Settings(kafka_bootstrap_servers="kafka:9092").fetch_max_wait_ms == 500
    assert Settings(kafka_fetch_max_wait_ms=40).fetch_max_wait_ms == 40
