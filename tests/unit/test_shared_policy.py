"""The pure parts of the shared limits: names, lock numbers, which credits to adopt."""

from __future__ import annotations

from syncengine.shared.credits import Report, adopt
from syncengine.shared.keys import free_numbers, lock_class, org_key, release_channel


def test_one_org_one_key_whatever_the_module_or_trailing_slash() -> None:
    """Configs of one org name the same key; another client id or domain is another org."""
    key = org_key("client-1", "https://www.zohoapis.com")
    assert org_key("client-1", "https://www.zohoapis.com/") == key
    assert org_key("client-1", "https://WWW.zohoapis.com") == key
    assert org_key("client-2", "https://www.zohoapis.com") != key
    assert org_key("client-1", "https://www.zohoapis.eu") != key
    assert "client-1" not in key


def test_lock_class_is_a_signed_32_bit_integer_from_the_key() -> None:
    """PostgreSQL's two-key advisory locks take int4: both halves of the range occur."""
    assert lock_class("7fffffff" + "0" * 56) == 2**31 - 1
    assert lock_class("80000000" + "0" * 56) == -(2**31)
    key = org_key("client-1", "https://www.zohoapis.com")
    assert -(2**31) <= lock_class(key) < 2**31


def test_release_channel_is_a_short_identifier_per_org() -> None:
    key = org_key("client-1", "https://www.zohoapis.com")
    channel = release_channel(key)
    assert channel.isidentifier()
    assert len(channel) <= 63
    assert channel != release_channel(org_key("client-2", "https://www.zohoapis.com"))


def test_free_numbers_never_offers_a_lock_this_session_holds() -> None:
    """Advisory locks are re-entrant per session: a held number would be taken twice."""
    assert free_numbers(4, frozenset()) == [0, 1, 2, 3]
    assert free_numbers(4, frozenset({1, 3})) == [0, 2]
    assert free_numbers(3, frozenset({1000, 5}), base=1000) == [1001, 1002]
    assert free_numbers(2, frozenset({0, 1})) == []


def report(*, reporter: str = "other", serial: float = 10.0, age_s: float = 1.0) -> Report:
    return Report(remaining=500, age_s=age_s, reporter=reporter, serial=serial)


def test_adopt_only_new_fresh_reports_of_other_processes() -> None:
    """Our own values already reached our limiter; old or stale ones mean nothing now."""
    assert adopt(report(), me="me", applied=0.0, max_age_s=600)
    assert not adopt(None, me="me", applied=0.0, max_age_s=600)
    assert not adopt(report(reporter="me"), me="me", applied=0.0, max_age_s=600)
    assert not adopt(report(serial=10.0), me="me", applied=10.0, max_age_s=600)
    assert adopt(report(serial=10.5), me="me", applied=10.0, max_age_s=600)
    assert not adopt(report(age_s=601), me="me", applied=0.0, max_age_s=600)
