"""Shared web layer: login, roles, sessions, CSRF, the server runner, the base page and its assets.

``edge.web.auth`` (users file, argon2, roles, sessions, CSRF, login/logout routes),
``edge.web.server`` (bind/TLS config, security headers, app factory, uvicorn runner),
``edge/web/templates/base.html`` + ``edge/web/static/``. Applications (the control-room console
in ``edge.web.console``, the station live view) add their routes and templates on top.
"""
