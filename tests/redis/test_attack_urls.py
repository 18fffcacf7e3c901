"""--state redis:// URLs that redis-py would read as something else are refused."""

from __future__ import annotations

import pytest

from layers_mock_server.settings import make_store


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://127.0.0.1:0/0", "use redis://HOST:PORT/DB"),  # redis-py: port 6379
        ("redis://127.0.0.1:6379/\u0663", "DB a number"),  # an Arabic-Indic 3: DB 3 before
        ("redis://127.0.0.1:6379/+3", "DB a number"),
        ("redis://:hunter2@127.0.0.1:0/0", ":***@"),
    ],
)
def test_a_url_redis_py_would_read_otherwise_is_refused_in_one_sentence(
    url: str, says: str
) -> None:
    with pytest.raises(ValueError, match=r"\A[^\n]*" + says.replace("*", r"\*")) as refused:
        make_store(url)
    assert "hunter2" not in str(refused.value)
