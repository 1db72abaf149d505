"""``/docs``: the interactive API page works in Chromium with every request outside the service
refused (as on a machine with no network), and it can call the API."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Route, expect

from tests.api.live import Live


def test_docs_page_is_interactive_offline(browser: Browser, live: Live) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    outside: list[str] = []

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith((live.url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{live.url}/docs")
    # Swagger UI rendered the OpenAPI 3.1 document: operations of every part of the API
    expect(page.locator(".info .title")).to_contain_text("faceledger")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible()
    shown = set(paths.all_inner_texts())
    for path in ("/api/v1/health", "/api/v1/searches", "/api/v1/audit/verify"):
        assert any(p.replace("\u200b", "") == path for p in shown), (path, sorted(shown)[:10])

    # try an operation from the page: the answer comes back from the live service
    health = page.locator(".opblock", has_text="/api/v1/health").first
    health.locator(".opblock-summary").click()
    health.locator("button.try-out__btn").click()
    health.locator("button.execute").click()
    expect(health.locator(".responses-wrapper .live-responses-table")).to_contain_text("200")
    expect(health.locator(".responses-wrapper")).to_contain_text('"model_id"')

    assert outside == [], f"the page asked for things outside the service: {outside}"
    assert errors == [], errors
    context.close()


def test_openapi_json_and_docs_links(live: Live) -> None:
    with httpx.Client(base_url=live.url) as client:
        doc = client.get("/openapi.json", follow_redirects=True)
        assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.")
        assert str(doc.url).endswith("/api/v1/openapi.json")
        page = client.get("/docs")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script: the strict policy holds
        assert client.get("/docs/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs/nothing.js").status_code == 404
