from __future__ import annotations

import pytest

from core.config import Settings
from web.runner import endpoints_config, rasa_env, rasa_model_path

pytestmark = pytest.mark.unit


def make(tmp_path, **kw):  # type: ignore[no-untyped-def]
    return Settings(var_dir=tmp_path, secret_key="s" * 32, rasa_token="t" * 32, **kw)


def test_sql_tracker_store_and_in_memory_lock_by_default(tmp_path):
    config = endpoints_config(make(tmp_path))
    assert config["tracker_store"] == {"type": "SQL", "dialect": "sqlite",
                                       "db": str(tmp_path / "rasa" / "tracker.db")}
    assert config["lock_store"] == {"type": "in_memory"}


def test_redis_by_url(tmp_path):
    config = endpoints_config(make(tmp_path, tracker_store_url="redis://:pw@cache:6380/2",
                                   lock_store_url="redis://cache:6380/3"))
    assert config["tracker_store"] == {"type": "redis", "url": "cache", "port": 6380, "db": 2,
                                       "key_prefix": "parley_tracker", "password": "pw"}
    assert config["lock_store"]["type"] == "redis" and config["lock_store"]["db"] == 3


def test_postgres_app_database_also_holds_the_trackers(tmp_path):
    config = endpoints_config(make(tmp_path, database_url="postgresql://bob:pw@db:5433/parley"))
    assert config["tracker_store"] == {"type": "SQL", "dialect": "postgresql", "url": "db",
                                       "port": 5433, "db": "parley", "username": "bob",
                                       "password": "pw"}


def test_the_dialogue_model_is_named_by_the_project_it_was_built_from(tmp_path):
    from bot.scaffold import scaffold

    project = tmp_path / "acme"
    scaffold(project, name="Acme Bank", languages=["en"])
    settings = make(tmp_path, project=project)
    before = rasa_model_path(settings)
    assert rasa_model_path(settings) == before  # nothing changed: the trained model is reused
    rules = project / "dialogue" / "rules.yml"
    rules.write_text(rules.read_text() + "  - rule: thanks again\n    steps:\n"
                     "      - intent: thank\n      - action: utter_contact\n")
    assert rasa_model_path(settings) != before
    (project / "nlu" / "en.yml").write_text((project / "nlu" / "en.yml").read_text()
                                            + "    - what is your postal address?\n")
    assert rasa_model_path(settings) != before


def test_internal_services_take_free_ports_unless_set(tmp_path, monkeypatch):
    from web.runner import with_free_ports

    monkeypatch.setenv("PARLEY_NLU_PORT", "5999")
    settings, env = with_free_ports(make(tmp_path))
    assert settings.nlu_port == 5999 and "PARLEY_NLU_PORT" not in env
    assert settings.action_port == int(env["PARLEY_ACTION_PORT"]) != 5055
    assert settings.rasa_url == env["PARLEY_RASA_URL"] != "http://127.0.0.1:5005"
    again, _ = with_free_ports(make(tmp_path))
    assert again.action_port != settings.action_port or again.rasa_url != settings.rasa_url


def test_a_rasa_token_that_starts_with_a_dash_is_still_one_argument(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """token_urlsafe() starts with '-' one time in 64; argparse would read it as an option."""
    from core.config import Settings
    from web import runner

    settings = Settings(environment="test", var_dir=tmp_path / "var",
                        models_dir=tmp_path / "models", rasa_token="-starts-with-a-dash")
    (rasa,) = [s for s in runner.services(settings, tmp_path / "m.tar.gz") if s.name == "rasa"]
    assert "--auth-token=-starts-with-a-dash" in rasa.cmd


def test_rasas_lock_tickets_live_as_long_as_the_apis_wait_for_a_turn(tmp_path):
    # A Rasa process killed mid-turn holds its conversation's ticket until it expires
    # (tests/integration/test_nginx_scale_out.py); Rasa's own default is 60 s.
    assert rasa_env(make(tmp_path))["TICKET_LOCK_LIFETIME"] == "30"
    assert rasa_env(make(tmp_path, rasa_timeout_s=7.5))["TICKET_LOCK_LIFETIME"] == "8"
