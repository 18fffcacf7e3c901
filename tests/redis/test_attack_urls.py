"""--state redis:// URLs that redis-py would read as something else are refused."""

from __future__ import annotations

import pytest
from redisd import started

from layers_mock_server.settings import Settings, make_deps, make_store


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


def test_a_redis_that_asks_for_a_password_says_so_and_where_it_goes() -> None:
    """A Redis with `requirepass` and a URL without one: Redis's own words ("HELLO must be
    called with the client already authenticated, otherwise the HELLO AUTH <user> <pass>
    option can be used ...") name a command the user never sent; the refusal says a password
    is asked for and where it goes in --state. A wrong password says so; neither shows it."""
    with started(options=("--requirepass", "hunter2")) as server:
        base = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(ValueError) as asked:
            make_deps(Settings(state=base))
        said = str(asked.value)
        assert "HELLO" not in said and "\n" not in said, said
        assert "asks for a password" in said and "redis://:PASSWORD@HOST:PORT/DB" in said, said
        wrong = base.replace("redis://", "redis://:hunter3@")
        with pytest.raises(ValueError, match="invalid username-password pair") as refused:
            make_deps(Settings(state=wrong))
        assert "hunter3" not in str(refused.value)
        deps = make_deps(Settings(state=base.replace("redis://", "redis://:hunter2@")))
        deps.sim.store.close()  # type: ignore[union-attr]
