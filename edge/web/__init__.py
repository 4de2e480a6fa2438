"""Shared web layer: login, roles, sessions, CSRF, the server runner, the base page and its assets.

``edge.web.auth`` (users file, argon2, roles, sessions, CSRF, login/logout routes),
``edge.web.server`` (bind/TLS config, security headers, app factory, uvicorn runner),
``edge/web/templates/base.html`` + ``edge/web/static/``. Applications (the control-room console
in ``edge.web.console``, the station live view) add their routes and templates on top::

    from edge.web import auth
    from edge.web.server import WebConfig, build_app, make_templates, serve

    async def page(request):
        user = auth.require(request, "viewer")          # 401 -> login page, 403 if the role is too low
        return request.app.state.templates.TemplateResponse(request, "mine.html", {...})

    @auth.csrf_protected                                  # every POST/PUT/DELETE: a test checks none is bare
    async def change(request):
        user = auth.require(request, "operator")
        ...

    app = build_app(cfg.web, [Route("/", page), Route("/x", change, methods=["POST"])],
                    make_templates(MY_DIR / "templates"), state={"thing": thing})
    serve(app, cfg.web)                                   # refuses a public bind without TLS

Templates extend ``base.html`` (blocks: title, head, body_class, nav, topbar_extra, main,
scripts); ``csrf_token(request)`` and ``current_user(request)`` are template globals; the page
carries the token in ``<meta name="csrf-token">`` and ``/static/web.js`` gives ``TE.post(url,
data)`` (sends it as ``X-CSRF-Token``) and ``TE.flash(text)``. Responses get ``no-store`` unless
they set their own Cache-Control (static files may be cached briefly), and a CSP that allows
scripts and styles only from the process itself.
"""
