"""Secrets never reach a log line, whatever field or text carries them."""

from __future__ import annotations

import io

import orjson

from syncengine.logs import REDACTED, configure_logging, redact_secrets, register_secret, scrub


def test_registered_secret_is_scrubbed_from_text() -> None:
    """A registered secret inside a longer message is replaced, the rest kept."""
    register_secret("s3cr3t-value-1")
    assert scrub("refused with s3cr3t-value-1 at noon") == f"refused with {REDACTED} at noon"


def test_short_values_are_not_treated_as_secrets() -> None:
    """Registering a two-letter value does not mangle every log line."""
    register_secret("ab")
    assert scrub("tab stab") == "tab stab"


def test_processor_hides_secret_named_fields_and_nested_values() -> None:
    """Fields named like secrets are hidden; registered secrets in nested values scrubbed."""
    register_secret("1000.abcdef.123456")
    event = {
        "event": "auth.refresh",
        "client_secret": "anything",
        "headers": {"Authorization": "Zoho-oauthtoken 1000.abcdef.123456"},
        "items": ["x", "1000.abcdef.123456"],
        "error": ValueError("bad token 1000.abcdef.123456"),
    }
    out = redact_secrets(None, "info", event)
    text = str(out)
    assert "1000.abcdef.123456" not in text
    assert out["client_secret"] == REDACTED
    assert out["error"] == f"ValueError: bad token {REDACTED}"


def test_json_logs_are_redacted_end_to_end() -> None:
    """A configured JSON logger writes one JSON object per line with secrets removed."""
    stream = io.StringIO()
    configure_logging(log_format="json", stream=stream)
    register_secret("refresh-abcdefgh")
    import structlog

    structlog.get_logger("t").info("auth.failed", detail="token refresh-abcdefgh refused")
    line = stream.getvalue().strip().splitlines()[-1]
    assert orjson.loads(line)["detail"] == f"token {REDACTED} refused"
