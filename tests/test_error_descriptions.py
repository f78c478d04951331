"""Every ``error_description`` reads well in the ASCII RFC 6749 §5.2 allows (%x20-21 / %x23-5B /
%x5D-7E): "CIBA section 7.1", not "CIBA ?7.1".

The descriptions ciba can produce are its message literals, found here by walking the source:
what is raised as (or with) a protocol error, the shared ``DESCRIPTIONS``, the registration
problems an unusable client is told. Each must come out of ``describe`` (which every body goes
through, ``ciba.errors.error_body``) whole: within the character set, and with no ``?`` standing
in for a character it could not spell.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oauthlib.oauth2.rfc6749 import errors as oauthlib_errors

import ciba
from ciba import errors
from ciba.errors import DESCRIPTIONS, describe
from tests.protocol import DESCRIPTION, backchannel, oauth_error
from tests.test_hints import issue_id_token

CIBA_ROOT = Path(ciba.__file__).parent


def _exceptions(module: Any) -> set[str]:
    return {name for name, obj in vars(module).items() if inspect.isclass(obj) and issubclass(obj, Exception)}


#: Calls whose first argument is a description (or a message that becomes one).
_DESCRIBED = {
    *_exceptions(errors),
    *_exceptions(oauthlib_errors),
    "JoseError",  # ciba.jose: repeated after "client_assertion: " and the hints' names
    "_invalid",  # ciba.sender.dpop: an InvalidDPoPProof
    "_use_nonce",  # ciba.sender.dpop: a UseDPoPNonce
}
#: Calls whose description is the second argument (the first is the error code).
_CODE_FIRST = {"BindingRefused"}
#: Registration problems: said to a client that cannot use CIBA (``unauthorized_client``).
_PROBLEM = "Problem"
_GETTEXT = {"_", "gettext", "gettext_lazy", "ngettext"}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _text(node: ast.expr | None) -> str | None:
    """A literal message, with each interpolated value as the word ``value``; None otherwise."""
    if isinstance(node, ast.Call) and _name(node.func) in _GETTEXT and node.args:
        return _text(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):  # _("... %(x)s") % {...}
        return _text(node.left)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "value" for part in node.values)
    return None


def _messages(call: ast.Call) -> Iterator[ast.expr | None]:
    name = _name(call.func)
    keywords = {k.arg: k.value for k in call.keywords}
    if name in _CODE_FIRST:
        yield call.args[1] if len(call.args) > 1 else keywords.get("description")
    elif name == _PROBLEM:
        yield call.args[2] if len(call.args) > 2 else keywords.get("message")
        yield keywords.get("said_to_client")
    elif name in _DESCRIBED:
        yield call.args[0] if call.args else None
        yield keywords.get("description")


def described_literals() -> list[tuple[str, str]]:
    """``(where, text)`` of every message literal on ciba's error paths."""
    found = []
    for source in sorted(CIBA_ROOT.rglob("*.py")):
        if "migrations" in source.parts:
            continue
        tree = ast.parse(source.read_text(), filename=str(source))
        where = source.relative_to(CIBA_ROOT.parent)
        for node in ast.walk(tree):
            texts: list[ast.expr | None] = []
            if isinstance(node, ast.Call):
                texts.extend(_messages(node))
            elif isinstance(node, ast.ClassDef) and node.name in _DESCRIBED:
                texts.extend(
                    stmt.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "description" for t in stmt.targets)
                )
            for expr in texts:
                text = _text(expr)
                if text:
                    found.append((f"{where}:{expr.lineno}", text))
    found.extend((f"DESCRIPTIONS[{code!r}]", text) for code, text in DESCRIPTIONS.items())
    return found


LITERALS = described_literals()


def test_the_walk_finds_the_messages_of_every_kind_of_error_path():
    sources = {where.split(":")[0] for where, _ in LITERALS}
    assert len(LITERALS) > 150
    for module in (
        "ciba/backchannel/rules.py",
        "ciba/client_auth/credentials.py",
        "ciba/sender/dpop.py",
        "ciba/jose/jws.py",
        "ciba/registration_rules.py",
        "ciba/oauth/validators.py",
    ):
        assert module in sources, module


@pytest.mark.parametrize("where, text", LITERALS, ids=[where for where, _ in LITERALS])
def test_every_description_reads_whole_in_rfc_6749s_character_set(where: str, text: str) -> None:
    described = describe(text)
    assert DESCRIPTION.fullmatch(described), (where, described)
    assert described.count("?") == text.count("?"), f"{where}: {text!r} became {described!r}"


@pytest.mark.parametrize(
    "text, described",
    [
        ("scope must contain openid (CIBA §7.1).", "scope must contain openid (CIBA section 7.1)."),
        ("RFC 9449 §§5-7", "RFC 9449 sections 5-7"),
        ("the “client” — its key’s ‘jkt’…", "the 'client' - its key's 'jkt'..."),
        ('a "quoted" word, a back\\slash, a\nnew line', "a 'quoted' word, a back/slash, a new line"),
        ("Le client n’est pas autorisé", "Le client n'est pas autorise"),  # a translation
    ],
    ids=["section", "sections", "typography", "quotes-backslash-newline", "translation"],
)
def test_describe_spells_what_rfc_6749_forbids_in_ascii(text: str, described: str) -> None:
    assert describe(text) == described


def test_only_a_character_without_any_ascii_spelling_becomes_a_question_mark():
    assert describe("键 key") == "? key"


def test_a_client_reads_the_section_of_the_spec_it_broke(client: Any, alice: Any, make_client: Any) -> None:
    """The regression openid-client showed: "scope must contain openid (CIBA ?7.1)."."""
    app, secret = make_client("poll")
    response = backchannel(client, app, secret, {"scope": "profile", "login_hint": "alice"})
    assert response.json()["error_description"] == "scope must contain openid (CIBA section 7.1)."


def test_an_id_token_hint_issued_to_another_client_is_refused_for_what_it_is(
    client: Any, alice: Any, make_client: Any
) -> None:
    """Its aud names the client it was issued to: the hint is not this client's. It used to be
    told "The JWT's aud does not name this server.", which sends a developer to the issuer."""
    _, _, token = issue_id_token(client, *make_client("poll"))
    other, other_secret = make_client("poll")
    response = backchannel(client, other, other_secret, {"scope": "openid", "id_token_hint": token})
    body = oauth_error(response, 400, "invalid_request")
    assert body["error_description"] == "id_token_hint: The JWT's aud does not name this client."
