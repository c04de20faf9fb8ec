"""Cross-origin requests: which web pages may post events, preflight included."""

from __future__ import annotations

from flask import Flask
from flask.blueprints import BlueprintSetupState
from flask_cors import CORS

# How long a browser may reuse a preflight answer (browsers cap it lower, Chrome at 2 h).
CORS_MAX_AGE_SECONDS = 86400


def init_cors(state: BlueprintSetupState) -> None:
    """Let web pages of the allowed origins post events, preflight included."""
    app = state.app
    assert isinstance(app, Flask)  # BlueprintSetupState types it as the sansio App
    CORS(
        app,
        resources=["/event", "/events", "/api/event", "/api/send"],
        origins=allowed_origins(app.extensions["settings"].cors_allowed_origins),
        methods=["POST"],
        allow_headers=["Content-Type", "Content-Encoding"],
        max_age=CORS_MAX_AGE_SECONDS,
        # With "*", answer "*" rather than echo each origin: one answer fits every page.
        send_wildcard=True,
        # Server-side senders carry no Origin: their responses need no CORS headers.
        always_send=False,
        # Handled errors already pass through after_request; unhandled ones are 500s.
        intercept_exceptions=False,
    )


def allowed_origins(setting: str) -> str | list[str]:
    """`*`, or the listed origins of a comma-separated setting."""
    origins = [origin.strip() for origin in setting.split(",") if origin.strip()]
    return "*" if "*" in origins else origins
