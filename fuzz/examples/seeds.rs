//! Writes the seed corpus of every target to `fuzz/seeds/<target>/`: real invitations,
//! envelopes packed for the fixture parties, credentials and presentations signed by the
//! fixture issuer and holder, API bodies, and the project's spec vectors
//! (`../shared/vectors`, when that folder is there). Each seed starts with its target's mode
//! byte where the target has modes. Run: `cargo run --example seeds` in `fuzz/`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use lanyard_protocol::credentials::status_list::{status_list_credential, StatusList};
use lanyard_protocol::credentials::vc::{issue, present};
use lanyard_protocol::didcomm::{encrypt_anoncrypt, encrypt_authcrypt, sign, Message};
use lanyard_protocol::encoding::b64u_encode;
use lanyard_protocol::keys::ContentEnc;

use lanyard_fuzz::{fixtures, run, CHALLENGE, DOMAIN, NOW};
use lanyard_protocol::credentials::vc::{verify_credential, verify_presentation};
use lanyard_protocol::did::Resolver;

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(root: &Path, target: &str) -> Seeds {
        let dir = root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("seed folder");
        Seeds { dir, count: 0 }
    }

    fn add(&mut self, mode: Option<u8>, bytes: impl AsRef<[u8]>) {
        let mut data = mode.map(|m| vec![m]).unwrap_or_default();
        data.extend_from_slice(bytes.as_ref());
        self.count += 1;
        fs::write(self.dir.join(format!("seed-{:03}", self.count)), data).expect("seed file");
    }
}

fn vector(name: &str) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors");
    fs::read_to_string(root.join(name)).ok()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let f = fixtures();

    // Invitations, in every form the wallet reads.
    let mut seeds = Seeds::new(&root, "invitation");
    let invitation = json!({
        "type": lanyard_protocol::protocols::out_of_band::INVITATION,
        "id": "6b3bd7fa-3c46-4a2f-9f4b-5b4c5e1d2a10",
        "from": f.alice.did,
        "body": { "goal_code": "issue-vc", "goal": "Connect with Acme", "label": "Acme", "accept": ["didcomm/v2"] },
    });
    let encoded = b64u_encode(invitation.to_string());
    seeds.add(None, invitation.to_string());
    seeds.add(None, format!("https://agent.example/join?_oob={encoded}"));
    seeds.add(None, format!("lanyard://oob?_oob={encoded}"));
    seeds.add(None, format!("didcomm://?_oob={encoded}#x"));
    seeds.add(None, "https://agent.example/i/abcDEF123456");
    for name in [
        "didcomm-spec/oob-invitation.json",
        "didcomm-spec/oob-invitation-compact.json",
        "didcomm-spec/oob-invitation-url.txt",
    ] {
        if let Some(text) = vector(name) {
            seeds.add(None, text);
        }
    }
    let invitations = seeds.count;

    // Envelopes for Bob.
    let mut seeds = Seeds::new(&root, "envelope");
    let message = Message::new(
        lanyard_protocol::protocols::trust_ping::PING,
        json!({ "response_requested": true }),
    )
    .from(f.alice.did.clone())
    .to([f.bob.did.clone()])
    .thid("thread-1");
    let plaintext = message.to_json();
    let bob = std::slice::from_ref(&f.bob.agreement);
    let signed = sign(
        &f.alice.ring,
        plaintext.as_bytes(),
        &f.alice.signing.kid,
        &f.alice.signing.key,
    )
    .expect("sign");
    let authcrypt = encrypt_authcrypt(&f.alice.ring, plaintext.as_bytes(), &f.alice.agreement, bob)
        .expect("authcrypt");
    let signed_authcrypt =
        encrypt_authcrypt(&f.alice.ring, signed.as_bytes(), &f.alice.agreement, bob)
            .expect("authcrypt");
    let mut valid: Vec<String> = [
        ContentEnc::A256CbcHs512,
        ContentEnc::A256Gcm,
        ContentEnc::Xc20p,
    ]
    .into_iter()
    .map(|enc| encrypt_anoncrypt(plaintext.as_bytes(), bob, enc).expect("anoncrypt"))
    .collect();
    valid.push(authcrypt.clone());
    valid.push(signed_authcrypt);
    valid.push(encrypt_anoncrypt(authcrypt.as_bytes(), bob, ContentEnc::Xc20p).expect("anoncrypt"));
    valid.push(signed.clone());
    valid.push(plaintext.clone());
    for envelope in valid {
        // A seed that does not unpack would only teach the fuzzer a refusal.
        run(f.bob_comm.unpack(&envelope)).expect("a seed envelope unpacks");
        seeds.add(Some(0), envelope);
    }
    for (mode, payload) in [
        (1, [&[0u8][..], plaintext.as_bytes()].concat()),
        (1, [&[2u8][..], authcrypt.as_bytes()].concat()),
        (1, [&[0u8][..], signed.as_bytes()].concat()),
        (2, plaintext.clone().into_bytes()),
        (2, signed.clone().into_bytes()),
        (3, plaintext.clone().into_bytes()),
        (4, plaintext.clone().into_bytes()),
    ] {
        seeds.add(Some(mode), payload);
    }
    for name in [
        "didcomm-spec/C1-plaintext-message.json",
        "didcomm-spec/C2-signed-eddsa-ed25519-alice-key-1.json",
        "didcomm-spec/C3-anoncrypt-ecdh-es-a256kw-x25519-xc20p.json",
        "didcomm-spec/C3-authcrypt-ecdh-1pu-a256kw-x25519-a256cbc-hs512.json",
    ] {
        if let Some(text) = vector(name) {
            let mode = if name.contains("C1") { 4 } else { 0 };
            seeds.add(Some(mode), text);
        }
    }
    let envelopes = seeds.count;

    // Credentials and presentations.
    let mut seeds = Seeds::new(&root, "credential");
    let unsigned = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:0f6c1d2e-6a57-4f0e-9d55-0c7c1b0a9b11",
        "type": ["VerifiableCredential", "MembershipCredential"],
        "issuer": { "id": f.issuer.did, "name": "Acme Club" },
        "name": "Membership",
        "validFrom": "2025-01-01T00:00:00Z",
        "validUntil": "2030-01-01T00:00:00Z",
        "credentialSchema": { "id": "urn:template:lanyard:membership-0123456789abcdef01234567-1", "type": "LanyardCredentialTemplate" },
        "credentialStatus": {
            "id": "https://issuer.example/status/1#94567",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "94567",
            "statusListCredential": "https://issuer.example/status/1",
        },
        "credentialSubject": { "id": f.holder.did, "memberNumber": "A-1001", "level": "gold" },
    });
    let vc = issue(
        &unsigned,
        &f.issuer.ring,
        &f.issuer.key,
        &f.issuer.method,
        NOW,
    )
    .expect("issue");
    let vp = present(
        std::slice::from_ref(&vc),
        &f.holder.did,
        &f.holder.ring,
        &f.holder.key,
        &f.holder.method,
        CHALLENGE,
        DOMAIN,
        NOW,
    )
    .expect("present");
    let resolver = Resolver::default();
    run(verify_credential(&vc, &resolver, NOW)).expect("the seed credential verifies");
    run(verify_presentation(&vp, &resolver, CHALLENGE, DOMAIN, NOW))
        .expect("the seed presentation verifies");
    seeds.add(Some(0), vc.to_string());
    seeds.add(Some(1), vp.to_string());
    seeds.add(Some(2), unsigned.to_string());
    seeds.add(Some(3), unsigned.to_string());
    let mut list = StatusList::new(0);
    list.set(94_567, true);
    let list_vc = status_list_credential(
        "https://issuer.example/status/1",
        &f.issuer.did,
        "2025-01-01T00:00:00Z",
        &list,
    );
    seeds.add(Some(4), list_vc.to_string());
    if let Some(text) = vector("vc-di-eddsa/signedJCS.json") {
        seeds.add(Some(0), text);
    }
    if let Some(text) = vector("vc-di-eddsa/unsigned.json") {
        seeds.add(Some(2), text);
    }
    let credentials = seeds.count;

    // API bodies.
    let mut seeds = Seeds::new(&root, "agent_api");
    let template_id = "urn:template:lanyard:membership-0123456789abcdef01234567-1767225600000";
    let template = json!({
        "templateName": "Template Demo",
        "credentialIssuer": "Acme Club",
        "credentialType": "Membership",
        "logoURL": "https://acme.example/logo.png",
        "credentialExpiration": "2030-12-31",
        "customFields": ["memberNumber", "level"],
        "descriptions": ["Member number", "Membership level"],
        "numberOfCredentials": 1000,
    });
    seeds.add(Some(0), template.to_string());
    let email = json!({
        "name": "Ada Lovelace",
        "medium": "email",
        "email": "ada@example.com",
        "emailTemplate": { "subject": "Your card", "body": "Hello, open {{inviteUrl}}" },
        "autoIssue": { "templateId": template_id, "values": { "memberNumber": "A-1", "level": "gold" } },
    });
    let sms = json!({
        "name": "Alan Turing",
        "medium": "sms",
        "phoneNumber": "+44 (20) 7946-0958",
        "organizationLabel": "Acme",
    });
    seeds.add(Some(1), email.to_string());
    seeds.add(Some(1), sms.to_string());
    seeds.add(
        Some(2),
        "name,medium,email,phoneNumber,organizationLabel,memberNumber,level\n\
         Ada Lovelace,email,ada@example.com,,,A-1,gold\n\
         Alan Turing,sms,,+442079460958,Acme,A-2,silver\n\
         \"Grace, Hopper\",email,grace@example.com,,,A-3\n",
    );
    seeds.add(Some(3), json!([email, sms]).to_string());
    let bodies = seeds.count;

    let total: Value = json!({
        "invitation": invitations,
        "envelope": envelopes,
        "credential": credentials,
        "agent_api": bodies,
    });
    println!("seeds written to {}: {total}", root.display());
}
