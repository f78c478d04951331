"""Whatever a device sends as a passkey response, ``ciba.passkeys`` answers with an
``InvalidAuthentication`` (a 400 the user can read), never another exception (a 500).

Each member of a valid response is removed, retyped, blown up or made bad base64, and the
decoded parts (clientDataJSON, authenticatorData, attestationObject) are broken inside; then
hypothesis throws arbitrary JSON at every entry point.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciba import passkeys
from ciba.errors import InvalidAuthentication, describe
from ciba.models import Passkey
from tests.test_passkeys import enroll, http_request, make_request
from tests.webauthn_authenticator import SoftAuthenticator, b64url, from_b64url

#: What replaces a member: absent, each JSON type, huge, not base64url, padded, empty.
BAD_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    True,
    [],
    {},
    ["AAAA"],
    {"a": 1},
    "",
    "!!!!",
    "AAAA====",
    "A",
    "AAAA AAAA",
    "\u00e9t\u00e9",
    "A" * 300_000,
    "\x00",
]


#: Members a browser may leave out or fill as it likes: changing them may still be accepted.
OPTIONAL = {
    ("authenticatorAttachment",),
    ("clientExtensionResults",),
    ("response", "userHandle"),
    ("response", "transports"),
    ("response", "authenticatorData"),  # in a registration: repeated inside attestationObject
    ("response", "publicKey"),
    ("response", "publicKeyAlgorithm"),
}


Case = tuple[str, bool, Callable[[dict[str, Any]], Any]]


def mutations(valid: dict[str, Any]) -> Iterator[Case]:
    """(what changed, whether it may still be accepted, the change applied to a fresh valid
    response) for the whole response and every member of it."""
    for name, whole in [
        ("not an object", "nonsense"),
        ("a list", [valid]),
        ("a number", 42),
        ("null", None),
        ("JSON text of garbage", "{"),
        ("huge JSON text", json.dumps({"id": "A" * 300_000})),
    ]:
        yield name, False, (lambda fresh, whole=whole: whole)
    yield "response a string", False, (lambda fresh: {**fresh, "response": "x"})
    for path in [(key,) for key in valid] + [("response", key) for key in valid["response"]]:
        for value in [*BAD_VALUES, "delete"]:

            def change(fresh: dict[str, Any], path: tuple[str, ...] = path, value: Any = value) -> Any:
                changed = copy.deepcopy(fresh)
                parent = changed if len(path) == 1 else changed["response"]
                if value == "delete":
                    parent.pop(path[-1])
                else:
                    parent[path[-1]] = value
                return changed

            yield f"{'.'.join(path)} = {str(value)[:20]!r}", path in OPTIONAL, change


def replace(member: str, data: Callable[[bytes], bytes]) -> Callable[[dict[str, Any]], Any]:
    """A change of the decoded ``response[member]`` by ``data``."""

    def change(fresh: dict[str, Any]) -> Any:
        changed = copy.deepcopy(fresh)
        changed["response"][member] = b64url(data(from_b64url(fresh["response"][member])))
        return changed

    return change


def broken_client_data() -> Iterator[Case]:
    def edit(**members: Any) -> Callable[[bytes], bytes]:
        def data(raw: bytes) -> bytes:
            client_data = json.loads(raw)
            client_data.update(members)
            return json.dumps({k: v for k, v in client_data.items() if v != "delete"}).encode()

        return data

    variants: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("not JSON", lambda raw: b"not json"),
        ("not UTF-8", lambda raw: b"\xff\xfe"),
        ("UTF-16", lambda raw: raw.decode().encode("utf-16")),
        ("a list", lambda raw: b"[" + raw + b"]"),
        ("challenge a number", edit(challenge=5)),
        ("challenge not base64url", edit(challenge="!!")),
        ("challenge null", edit(challenge=None)),
        ("challenge with junk inside", lambda raw: raw.replace(b'"challenge":"', b'"challenge":"!.')),
        ("challenge padded", lambda raw: raw.replace(b'","origin"', b'==","origin"')),
        ("no challenge", edit(challenge="delete")),
        ("origin a list", edit(origin=["x"])),
        ("origin null", edit(origin=None)),
        ("type other", edit(type="webauthn.other")),
        ("cross-origin", edit(crossOrigin=True)),
        ("token binding bogus", edit(tokenBinding={"status": "bogus"})),
        ("token binding without status", edit(tokenBinding={})),
    ]
    for name, data in variants:
        yield f"clientDataJSON {name}", False, replace("clientDataJSON", data)


def assert_refused(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except InvalidAuthentication as refusal:
        assert describe(refusal.description) == refusal.description
        return refusal.description
    raise AssertionError("accepted")


def check(cases: list[Case], fresh: Callable[[], dict[str, Any]], *calls: Callable[[Any], Any]) -> None:
    """Each case on a fresh valid response: refused by every call (or, for an optional member,
    refused or accepted), never another exception."""
    for name, optional, change in cases:
        for call in calls:
            try:
                if optional:
                    try:
                        call(change(fresh()))
                    except InvalidAuthentication:
                        pass
                else:
                    assert_refused(call, change(fresh()))
            except Exception as failure:  # name the case
                raise AssertionError(f"{name}: {failure!r}") from failure


@pytest.fixture
def setup(alice: Any, make_client: Any, settings: Any) -> Any:
    # Hundreds of sign-ins from one address: what this file tests is each one's answer, not
    # the per-address rate (tests/test_passkeys.py tests that).
    settings.CIBA = {**settings.CIBA, "PASSKEY_SIGN_IN_RATE": None}
    phone = SoftAuthenticator()
    enroll(alice, phone)
    ar = make_request(make_client()[0], alice)
    return alice, ar, phone


def test_every_malformed_assertion_is_an_invalid_authentication(setup):
    alice, ar, phone = setup
    valid = phone.get(passkeys.approval_options(http_request(), ar, alice))
    cases: list[Case] = [*mutations(valid), *broken_client_data()]
    for name, data in [
        ("short", lambda raw: b"\0" * 10),
        ("attested data cut", lambda raw: raw[:32] + bytes([0x45]) + raw[33:37] + bytes(5)),
        ("extensions not CBOR", lambda raw: raw[:32] + bytes([0x85]) + raw[33:37] + b"\xff\xff"),
        ("leftover bytes", lambda raw: raw + b"\0"),
        ("BS without BE", lambda raw: raw[:32] + bytes([0x15]) + raw[33:37]),
    ]:
        cases.append((f"authenticatorData {name}", False, replace("authenticatorData", data)))

    def approval() -> dict[str, Any]:
        return phone.get(passkeys.approval_options(http_request(), ar, alice))

    def sign_in() -> dict[str, Any]:
        return phone.get(passkeys.sign_in_options(http_request()))

    check(cases, approval, lambda credential: passkeys.verify_approval(http_request(), ar, alice, credential))
    check(cases, sign_in, lambda credential: passkeys.verify_sign_in(http_request(), credential))
    assert passkeys.verify_approval(http_request(), ar, alice, approval()).level


def test_every_malformed_attestation_is_an_invalid_authentication(alice):
    def fresh() -> dict[str, Any]:
        Passkey.objects.filter(user=alice).delete()  # what an optional change let through
        return SoftAuthenticator().create(passkeys.registration_options(http_request(), alice))

    valid = fresh()
    cases: list[Case] = [*mutations(valid), *broken_client_data()]

    def cbor(edit: Callable[[dict[str, Any]], Any]) -> Callable[[bytes], bytes]:
        return lambda raw: cbor2.dumps(edit(cbor2.loads(raw)))

    for name, data in [
        ("not CBOR", lambda raw: b"\xff\x00"),
        ("a CBOR list", lambda raw: cbor2.dumps([1, 2])),
        ("no authData", cbor(lambda a: {"fmt": "none", "attStmt": {}})),
        ("fmt unknown", cbor(lambda a: {**a, "fmt": "bogus"})),
        ("none with a statement", cbor(lambda a: {**a, "attStmt": {"sig": b"x"}})),
        ("packed without certificates", cbor(lambda a: {**a, "fmt": "packed", "attStmt": {"alg": -7}})),
        ("authData short", cbor(lambda a: {**a, "authData": b"\0" * 10})),
        ("authData without credential", cbor(lambda a: {**a, "authData": a["authData"][:37]})),
        ("public key not COSE", cbor(lambda a: {**a, "authData": a["authData"][:87] + cbor2.dumps({1: 99})})),
    ]:
        cases.append((f"attestationObject {name}", False, replace("attestationObject", data)))
    check(cases, fresh, lambda credential: passkeys.enroll(http_request(), alice, credential))
    assert passkeys.enroll(http_request(), alice, fresh())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
RESPONSE_KEYS = ["clientDataJSON", "authenticatorData", "signature", "userHandle", "attestationObject"]


@st.composite
def credentials(draw: Any) -> Any:
    """Arbitrary JSON, or shapes close to a credential with arbitrary members."""
    if draw(st.booleans()):
        return draw(JSON)
    member = JSON | st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=80)
    response = draw(st.dictionaries(st.sampled_from(RESPONSE_KEYS), member, max_size=5))
    return {
        "id": draw(member),
        "rawId": draw(member),
        "type": draw(st.sampled_from(["public-key", "other", None])),
        "response": response,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(credential=credentials())
def test_arbitrary_json_is_an_invalid_authentication(setup, credential):
    alice, ar, _ = setup
    assert_refused(passkeys.verify_approval, http_request(), ar, alice, credential)
    assert_refused(passkeys.verify_sign_in, http_request(), credential)
    assert_refused(passkeys.enroll, http_request(), alice, credential)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=JSON, details=JSON, shown=JSON)
def test_arbitrary_approve_fields_never_fail_otherwise(setup, scopes, details, shown):
    alice, ar, phone = setup
    try:
        options = passkeys.approval_options(
            http_request(),
            ar,
            alice,
            scopes=scopes,
            authorization_details=details,
            displayed_details_hash=shown,
        )
    except InvalidAuthentication:
        return
    assertion = phone.get(options)
    authentication = passkeys.verify_approval(
        http_request(),
        ar,
        alice,
        assertion,
        scopes=scopes,
        authorization_details=details,
        displayed_details_hash=shown,
    )
    assert authentication.level
