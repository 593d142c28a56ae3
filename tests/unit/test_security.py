from __future__ import annotations

import pytest

from core.errors import Forbidden, Unauthorized
from core.security import bearer, mint_conversation_token, verify_conversation_token

pytestmark = pytest.mark.unit
KEY = "k" * 32


def test_a_token_opens_its_own_conversation_only():
    token = mint_conversation_token("abc", key=KEY)
    verify_conversation_token(token, "abc", key=KEY, ttl_s=60)
    with pytest.raises(Forbidden):
        verify_conversation_token(token, "abd", key=KEY, ttl_s=60)


def test_a_token_signed_with_another_key_is_invalid():
    token = mint_conversation_token("abc", key="other" * 8)
    with pytest.raises(Unauthorized) as error:
        verify_conversation_token(token, "abc", key=KEY, ttl_s=60)
    assert error.value.code == "invalid_token"


def test_tokens_expire():
    token = mint_conversation_token("abc", key=KEY, now=1_000)
    verify_conversation_token(token, "abc", key=KEY, ttl_s=60, now=1_059)
    with pytest.raises(Unauthorized) as error:
        verify_conversation_token(token, "abc", key=KEY, ttl_s=60, now=1_061)
    assert error.value.code == "token_expired"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc"])
def test_bearer_header_parsing(header):
    assert bearer(header) is None


def test_production_refuses_placeholder_secrets(tmp_path):
    from core.config import Settings

    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(environment="production", var_dir=tmp_path, secret_key="changeme",
                 rasa_token="x" * 32)


def test_development_generates_and_keeps_a_secret(tmp_path):
    from core.config import Settings

    first = Settings(var_dir=tmp_path).secret_key.get_secret_value()
    second = Settings(var_dir=tmp_path).secret_key.get_secret_value()
    assert first == second and len(first) >= 32
    assert (tmp_path / "secrets" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("forged", ["v1.ä.1.sig", "v1.abc.1.签名", "v1.abc.1.\udcff", "ü"])
def test_non_ascii_tokens_are_refused_not_crashed_on(forged: str) -> None:
    """``hmac.compare_digest`` raises TypeError on non-ASCII text: that was a 500."""
    with pytest.raises(Unauthorized):
        verify_conversation_token(forged, "abc", key=KEY, ttl_s=60)


def test_a_non_ascii_conversation_id_is_another_conversation() -> None:
    token = mint_conversation_token("abc", key=KEY)
    with pytest.raises(Forbidden):
        verify_conversation_token(token, "äbc", key=KEY, ttl_s=60)
