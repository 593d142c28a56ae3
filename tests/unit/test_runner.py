from __future__ import annotations

import pytest

from core.config import Settings
from web.runner import endpoints_config, rasa_fingerprint

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


def test_rasa_model_fingerprint_follows_the_training_data(tmp_path):
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "a.yml").write_text("nlu: []\n")
    before = rasa_fingerprint(nlu)
    (nlu / "a.yml").write_text("nlu: [] # changed\n")
    assert rasa_fingerprint(nlu) != before


def test_a_rasa_token_that_starts_with_a_dash_is_still_one_argument(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """token_urlsafe() starts with '-' one time in 64; argparse would read it as an option."""
    from core.config import Settings
    from web import runner

    settings = Settings(environment="test", var_dir=tmp_path / "var",
                        models_dir=tmp_path / "models", rasa_token="-starts-with-a-dash")
    (rasa,) = [s for s in runner.services(settings, tmp_path / "m.tar.gz") if s.name == "rasa"]
    assert "--auth-token=-starts-with-a-dash" in rasa.cmd
