"""The served OpenAPI document lists every route and every status each can answer, and
every error follows the one documented shape."""

from __future__ import annotations

from tests.support.api_support import API, assert_error, documented_operations

PORTAL = "/api/v1/portal"


def test_every_api_route_is_documented(app, client):
    spec = client.get("/openapi.json").json
    documented = {(method, path) for method, path in documented_operations(spec)}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith((API, PORTAL)) and rule.rule not in ("/healthz", "/readyz"):
            continue
        path = rule.rule.replace("<string:", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, (method, path)


def test_every_operation_documents_its_statuses(client):
    spec = client.get("/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A tenant API key"}
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["portalSession"]["scheme"] == "bearer"
    for (method, path), operation in documented_operations(spec).items():
        statuses = set(operation["responses"])
        assert operation.get("summary"), (method, path)
        assert any(code.startswith("2") for code in statuses), (method, path)
        if path.startswith(PORTAL):
            assert operation["security"] == [{"portalSession": []}], (method, path)
            assert method == "GET" or "403" in statuses, (method, path)
        elif not path.startswith(API):
            assert operation["security"] == [], (method, path)
            continue
        assert {"401", "503"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, (method, path)
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "422" in statuses, (method, path)
        for code in statuses - {"200", "201", "202", "204"}:
            assert operation["responses"][code]["$ref"].startswith("#/components/responses/")
    assert "409" in spec["paths"][f"{API}/deliveries/{{delivery_id}}/retry"]["post"]["responses"]
    assert "409" in spec["paths"][f"{API}/events"]["post"]["responses"]


def test_error_responses_reference_the_error_schema(client):
    spec = client.get("/openapi.json").json
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message"}
    unauthorized = spec["components"]["responses"]["UNAUTHORIZED"]
    assert unauthorized["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/Error"


def test_docs_page_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_framework_errors_use_the_error_shape(client, tenant):
    assert_error(client.get(f"{API}/no-such-route", headers=tenant["headers"]), 404)
    not_allowed = client.put(f"{API}/subscriptions", headers=tenant["headers"])
    assert_error(not_allowed, 405)
    assert "GET" in not_allowed.headers["Allow"]


def test_recover_documents_the_window_it_keeps(client):
    """recover keeps a long window's last 14 days (services/recovery.py): the
    reference says so, rather than refusing an `until` far after `since`."""
    schema = client.get("/openapi.json").json["components"]["schemas"]["Recover"]
    assert "cut to its last 14 days" in schema["properties"]["until"]["description"]
