"""The customer's journey through the Python bindings only (uniffi, lanyard_ffi), against a real
agent on loopback: a KeyProtector and a WalletListener implemented in Python, accept an invite,
sync, receive and list the credential, present it, see it removed after template deletion; then
each error kind the bindings can raise from here. Prints one JSON line per step; exits non-zero
on the first failure.

Usage: journey.py <agent url> <organisation API key> <work dir>"""

import asyncio
import json
import os
import secrets
import sys
import urllib.request

import lanyard_ffi as lf

AGENT, KEY, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
API = AGENT + "/core/api/v1/programmatic"


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(API + path, data=data, method=method)
    request.add_header("x-api-key", KEY)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["data"]


def step(name, **facts):
    print(json.dumps({"step": name, **facts}), flush=True)


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


class Keystore(lf.KeyProtector):
    """A stand-in for the platform keystore (tests only): XOR with a random pad held here."""

    def __init__(self, fail=False):
        self.pad = secrets.token_bytes(64)
        self.fail = fail

    def wrap(self, data_key):
        if self.fail:
            raise lf.KeyProtectorError.Failed("the keystore is locked")
        return bytes(a ^ b for a, b in zip(data_key, self.pad))

    def unwrap(self, wrapped):
        if self.fail:
            raise lf.KeyProtectorError.Failed("the keystore is locked")
        return bytes(a ^ b for a, b in zip(wrapped, self.pad))


class Events(lf.WalletListener):
    def __init__(self):
        self.seen = []

    def on_event(self, event):
        self.seen.append(event)


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data):
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, rest = divmod(number, 58)
        text = B58[rest] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def stranger_did(endpoint, agreement=True):
    """A did:peer:2 nobody holds the keys of, whose service is `endpoint` (with no key
    agreement key at all when `agreement` is false: nothing can be encrypted to it)."""
    import base64
    x25519 = "z" + base58(b"\xec\x01" + secrets.token_bytes(32))
    signing = "z" + base58(b"\xed\x01" + secrets.token_bytes(32))
    service = json.dumps({"t": "dm", "s": {"uri": endpoint, "a": ["didcomm/v2"]}}, separators=(",", ":"))
    encoded = base64.urlsafe_b64encode(service.encode()).decode().rstrip("=")
    keys = f".E{x25519}" if agreement else ""
    return f"did:peer:2{keys}.V{signing}.S{encoded}"


async def expect_error(kind, action):
    try:
        result = action()
        if asyncio.iscoroutine(result):
            await result
    except lf.LanyardError as error:
        expect(type(error).__name__ == kind, f"expected {kind}, got {type(error).__name__}: {error}")
        step("error", kind=kind, message=str(error))
        return
    raise AssertionError(f"expected {kind}, nothing was raised")


async def main():
    keystore = Keystore()
    # The agent runs on this machine: loopback is allowed, as in development.
    wallet = lf.LanyardWallet.open_with_network(
        os.path.join(WORK, "wallet"), keystore, lf.NetworkOptions(allow_loopback=True, allow=[]))
    events = Events()
    wallet.set_listener(events)

    template = call("POST", "/credential/template", {
        "templateName": "Member", "credentialIssuer": "Acme", "credentialType": "Membership",
        "logoURL": "https://example.com/logo.png", "credentialExpiration": None,
        "customFields": ["level"], "descriptions": ["Level"], "numberOfCredentials": None,
    })["templateId"]
    customer = call("POST", "/customer", {
        "name": "Jane", "medium": "email", "email": "jane@example.com",
        "autoIssue": {"templateId": template, "values": {"level": "gold"}},
    })
    accepted = await wallet.accept_invitation(customer["invitation"]["url"])
    expect(accepted.is_connection(), f"a connection: {accepted}")
    step("connected", label=accepted.connection.label)

    await wallet.sync()
    offers = wallet.offers()
    expect(len(offers) == 1, f"one offer: {offers}")
    expect(any(f.name == "level" and f.value == "gold" for f in offers[0].fields), "the offered level")
    await wallet.accept_offer(offers[0].id)
    await wallet.sync()
    credentials = wallet.credentials()
    expect(len(credentials) == 1, f"one credential: {credentials}")
    credential = credentials[0]
    expect(credential.template_id == template, "the template id")
    expect(json.loads(credential.json)["proof"]["cryptosuite"] == "eddsa-jcs-2022", "a signed VC")
    expect(any(f.name == "level" and f.description == "Level" for f in credential.fields),
           f"the field with its template description: {credential.fields}")
    step("stored", credential=credential.id, issuer=credential.issuer_name)

    verification = call("POST", "/verification", {"templateId": template, "requiredFields": ["level"]})
    accepted = await wallet.accept_invitation(verification["invitation"]["url"])
    expect(accepted.is_presentation_request(), f"a request: {accepted}")
    request = accepted.request
    expect(request.matching_credential_ids == [credential.id], f"the match: {request}")
    # The identity the wallet can prove: the verifier's DID and, checked, its domain.
    expect(request.verifier_did.startswith("did:peer:2"), f"the verifier's DID: {request}")
    expect(request.verified_domain == AGENT.split("://", 1)[1], f"the verified domain: {request}")
    await wallet.present(request.id, [credential.id])
    await wallet.sync()
    results = [e for e in events.seen if e.is_presentation_result()]
    expect(results and results[-1].verified, f"verified: {events.seen}")
    state = call("GET", "/verification/" + verification["id"])
    expect(state["state"] == "verified" and state["disclosed"]["level"] == "gold", f"the verifier: {state}")
    step("presented", state=state["state"])

    call("DELETE", "/credential/template/" + template)
    await wallet.sync()
    expect(wallet.credentials() == [], "removed after the template was deleted")
    removed = [e for e in events.seen if e.is_credentials_removed()]
    expect(removed and removed[-1].template_id == template and removed[-1].count == 1, f"the event: {events.seen}")
    step("removed", count=removed[-1].count)

    kinds = sorted({type(e).__name__ for e in events.seen})
    step("events", kinds=kinds)

    # Each error kind reachable from here, intact across the boundary.
    await expect_error("InvalidInvitation", lambda: wallet.accept_invitation("not an invitation"))
    expired = {"type": "https://didcomm.org/out-of-band/2.0/invitation", "id": "x", "from": "did:example:a",
               "expires_time": 1, "body": {"accept": ["didcomm/v2"]}}
    await expect_error("InvitationExpired", lambda: wallet.accept_invitation(json.dumps(expired)))
    await expect_error("InvitationUsed", lambda: wallet.accept_invitation(verification["invitation"]["url"]))
    await expect_error("Unreachable", lambda: wallet.accept_invitation("http://127.0.0.1:9/i/abcdefabcdef"))
    # The cloud metadata address is never fetched.
    await expect_error("Refused", lambda: wallet.accept_invitation("https://169.254.169.254/i/abcdefabcdef"))
    await expect_error("NotFound", lambda: wallet.accept_offer("no-such-offer"))
    await expect_error("WrongState", lambda: wallet.present(request.id, [credential.id]))
    # An invitation from a DID whose endpoint is the agent, which holds no key of it.
    stranger = {"type": "https://didcomm.org/out-of-band/2.0/invitation", "id": "y",
                "from": stranger_did(AGENT + "/didcomm"), "body": {"accept": ["didcomm/v2"]}}
    await expect_error("Refused", lambda: wallet.accept_invitation(json.dumps(stranger)))
    mute = {"type": "https://didcomm.org/out-of-band/2.0/invitation", "id": "z",
            "from": stranger_did(AGENT + "/didcomm", agreement=False), "body": {"accept": ["didcomm/v2"]}}
    await expect_error("Message", lambda: wallet.accept_invitation(json.dumps(mute)))
    await expect_error("KeyProtector", lambda: lf.LanyardWallet.open(os.path.join(WORK, "wallet"), Keystore(fail=True)))
    await expect_error("Storage", lambda: lf.LanyardWallet.open_with_passphrase(os.path.join(WORK, "wallet"), "a passphrase"))
    # The wallet is still open: a second open of its store is refused for now (transient).
    await expect_error("Busy", lambda: lf.LanyardWallet.open(os.path.join(WORK, "wallet"), keystore))
    step("done")


if __name__ == "__main__":
    asyncio.run(main())
