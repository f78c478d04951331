"""The example project serves an OpenAPI schema of the consent and device APIs."""

import yaml


def test_the_schema_documents_the_consent_and_device_endpoints(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in (
        "/o/ciba/requests/",
        "/o/ciba/requests/{auth_req_id}/",
        "/o/ciba/requests/{auth_req_id}/approve/",
        "/o/ciba/requests/{auth_req_id}/deny/",
        "/o/ciba/devices/",
        "/o/ciba/devices/{device_id}/",
        "/o/backchannel-authentication/",
    ):
        assert path in paths, path
    approve = paths["/o/ciba/requests/{auth_req_id}/approve/"]["post"]
    assert {"200", "403", "409"} <= set(approve["responses"])
    assert "oauth2" in str(approve["security"]) and "cookieAuth" in str(approve["security"])
    assert "/api/schema/" not in paths
