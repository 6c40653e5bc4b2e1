// Drives Veramo 7's DIDComm protocol layer against a Lanyard mediator (tests/tests/veramo.rs).
//
// The agent is a stock Veramo agent (did:peer:2 identities from @veramo/did-provider-peer, keys
// in @veramo/kms-local, Veramo's message handler chain, its Coordinate Mediation 3.0 message
// builders and recipient handler, its Pickup 3.0 recipient handler, its HTTP transport and its
// sendDIDCommMessage). One thing is replaced: Veramo's own envelope code, which deviates from
// DIDComm v2.1 (no apv/apu, ECDH-1PU draft 3, A256GCM for authcrypt). `SpecEnvelopes` packs and
// unpacks with didcomm-node, the WASM build of didcomm-rust.
//
// Usage: node driver.mjs pickup <mediator-did>
//   Prints one JSON object per line on stdout; waits for a line on stdin where it says so:
//   {"step":"registered","did":...}   mediation granted and the DID added as a recipient
//   (reads a line: the Lanyard side has forwarded a message to that DID)
//   {"step":"picked-up",...}          what Pickup 3.0 delivered, handled and acknowledged
//
// Usage: node driver.mjs plaintext <mediator-did> <from-did>
//   Prints the plaintext mediate-request Veramo's builder makes, unpacked (with its ISO 8601
//   created_time): {"step":"plaintext","message":...}
//
// Usage: node driver.mjs stock <mediator-did>
//   Prints Veramo's own envelopes of a mediate-request to the mediator, as Veramo packs them,
//   and the same envelopes with the DIDComm v2.1 `apv` (and `apu`) patched into their headers:
//   {"step":"stock","authcrypt":...,"anoncrypt":...,"authcrypt_patched":...,"anoncrypt_patched":...}
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'

import { createAgent } from '@veramo/core'
import {
  CoordinateMediation,
  CoordinateMediationV3RecipientMessageHandler,
  createV3DeliveryRequestMessage,
  createV3MediateRequestMessage,
  createV3RecipientQueryMessage,
  createV3RecipientUpdateMessage,
  createV3StatusRequestMessage,
  DIDComm,
  DIDCommMessageHandler,
  PickupRecipientMessageHandler,
  UpdateAction,
} from '@veramo/did-comm'
import { DataStoreJson } from '@veramo/data-store-json'
import { DIDManager, MemoryDIDStore } from '@veramo/did-manager'
import { getResolver as peerResolver, PeerDIDProvider } from '@veramo/did-provider-peer'
import { DIDResolverPlugin } from '@veramo/did-resolver'
import { KeyManager, MemoryKeyStore, MemoryPrivateKeyStore } from '@veramo/key-manager'
import { KeyManagementSystem } from '@veramo/kms-local'
import { MessageHandler } from '@veramo/message-handler'
import { bytesToBase64url, decodeBase64url, encodeBase64url, hexToBytes } from '@veramo/utils'
import { Message as DidcommMessage } from 'didcomm-node'
import { Resolver } from 'did-resolver'

const STATUS = 'https://didcomm.org/messagepickup/3.0/status'
const DELIVERY = 'https://didcomm.org/messagepickup/3.0/delivery'

const out = (line) => process.stdout.write(JSON.stringify(line) + '\n')
const fail = (why) => {
  process.stderr.write(`veramo driver: ${why}\n`)
  process.exit(1)
}

const resolver = new Resolver(peerResolver())
const privateKeys = new MemoryPrivateKeyStore()

// base58btc (the multibase `z` alphabet).
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
function base58Decode(text) {
  let bytes = [0]
  for (const char of text) {
    let carry = B58.indexOf(char)
    if (carry < 0) throw new Error(`not base58btc: ${text}`)
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58
      bytes[i] = carry & 0xff
      carry >>= 8
    }
    while (carry > 0) {
      bytes.push(carry & 0xff)
      carry >>= 8
    }
  }
  for (const char of text) {
    if (char !== '1') break
    bytes.push(0)
  }
  return Uint8Array.from(bytes.reverse())
}

// A multikey (`z` + multicodec ed25519-pub 0xed01 / x25519-pub 0xec01 + 32 bytes) as a JWK.
function multikeyJwk(multibase) {
  if (!multibase.startsWith('z')) throw new Error(`not a base58btc multikey: ${multibase}`)
  const bytes = base58Decode(multibase.slice(1))
  const crv = { 0xed: 'Ed25519', 0xec: 'X25519' }[bytes[0]]
  if (!crv || bytes[1] !== 0x01 || bytes.length !== 34) {
    throw new Error(`not an Ed25519 or X25519 multikey: ${multibase}`)
  }
  return { kty: 'OKP', crv, x: bytesToBase64url(bytes.slice(2)) }
}

const absolute = (did, id) => (id.startsWith('#') ? did + id : id)

// The DID document didcomm-node wants: absolute key ids, JsonWebKey2020 keys, the
// DIDCommMessaging service with `uri`/`accept`/`routing_keys`. Resolved with Veramo's own
// did:peer resolver, so both Veramo's sendDIDCommMessage and didcomm-node see the same DID.
const didcommResolver = {
  async resolve(did) {
    const { didDocument } = await resolver.resolve(did)
    if (!didDocument) return null
    const methods = (didDocument.verificationMethod ?? []).map((vm) => ({
      id: absolute(did, vm.id),
      type: 'JsonWebKey2020',
      controller: did,
      publicKeyJwk: vm.publicKeyJwk ?? multikeyJwk(vm.publicKeyMultibase),
    }))
    const refs = (list) => (list ?? []).map((r) => absolute(did, typeof r === 'string' ? r : r.id))
    const service = (didDocument.service ?? [])
      .filter((s) => s.type === 'DIDCommMessaging')
      .map((s, i) => {
        const endpoint = Array.isArray(s.serviceEndpoint) ? s.serviceEndpoint[0] : s.serviceEndpoint
        const uri = typeof endpoint === 'string' ? endpoint : endpoint.uri
        return {
          id: absolute(did, s.id ?? `#service-${i}`),
          type: 'DIDCommMessaging',
          serviceEndpoint: {
            uri,
            accept: endpoint.accept ?? ['didcomm/v2'],
            routing_keys: endpoint.routingKeys ?? endpoint.routing_keys ?? [],
          },
        }
      })
    return {
      id: did,
      keyAgreement: refs(didDocument.keyAgreement),
      authentication: refs(didDocument.authentication),
      verificationMethod: methods,
      service,
    }
  },
}

// The identity's secrets, read from Veramo's own private key store, under the ids its
// did:peer:2 document gives them.
let secrets = []
const secretsResolver = {
  async get_secret(id) {
    return secrets.find((s) => s.id === id) ?? null
  },
  async find_secrets(ids) {
    return ids.filter((id) => secrets.some((s) => s.id === id))
  },
}

async function loadSecrets(identifier) {
  const doc = await didcommResolver.resolve(identifier.did)
  secrets = []
  for (const key of identifier.keys) {
    const stored = await privateKeys.getKey({ alias: key.kid })
    const x = bytesToBase64url(hexToBytes(key.publicKeyHex))
    const method = doc.verificationMethod.find((vm) => vm.publicKeyJwk.x === x)
    if (!method) throw new Error(`key ${key.kid} is not in ${identifier.did}'s document`)
    const d = bytesToBase64url(hexToBytes(stored.privateKeyHex).slice(0, 32))
    secrets.push({
      id: method.id,
      type: 'JsonWebKey2020',
      privateKeyJwk: { ...method.publicKeyJwk, d },
    })
  }
}

// Veramo writes `created_time` as an ISO 8601 string; DIDComm v2.1 says seconds since the epoch.
const epochSeconds = (time) =>
  typeof time === 'string' ? Math.floor(Date.parse(time) / 1000) : time

const unpacked = []

// Veramo's DIDComm plugin (its sendDIDCommMessage, transports, return-route handling) with
// spec-correct envelopes: didcomm-node packs and unpacks.
class SpecEnvelopes extends DIDComm {
  async packDIDCommMessage(args, context) {
    if (args.packing !== 'authcrypt' && args.packing !== 'anoncrypt') {
      return super.packDIDCommMessage(args, context)
    }
    const plain = { typ: 'application/didcomm-plain+json', ...args.message }
    if (plain.created_time !== undefined) plain.created_time = epochSeconds(plain.created_time)
    if (plain.expires_time !== undefined) plain.expires_time = epochSeconds(plain.expires_time)
    const to = Array.isArray(plain.to) ? plain.to[0] : plain.to
    const from = args.packing === 'authcrypt' ? plain.from : null
    const [message] = await new DidcommMessage(plain).pack_encrypted(
      to,
      from,
      null,
      didcommResolver,
      secretsResolver,
      { forward: false },
    )
    return { message }
  }

  async unpackDIDCommMessage(args, context) {
    const text = typeof args.message === 'string' ? args.message : JSON.stringify(args.message)
    const parsed = JSON.parse(text)
    if (!parsed.ciphertext) return super.unpackDIDCommMessage(args, context)
    const [message, metadata] = await DidcommMessage.unpack(
      text,
      didcommResolver,
      secretsResolver,
      {},
    )
    const plain = message.as_value()
    unpacked.push({ message: plain, metadata })
    return {
      message: plain,
      metaData: { packing: metadata.authenticated ? 'authcrypt' : 'anoncrypt' },
    }
  }
}

function veramo(didcomm) {
  return createAgent({
    plugins: [
      new KeyManager({
        store: new MemoryKeyStore(),
        kms: { local: new KeyManagementSystem(privateKeys) },
      }),
      new DIDManager({
        store: new MemoryDIDStore(),
        defaultProvider: 'did:peer',
        providers: { 'did:peer': new PeerDIDProvider({ defaultKms: 'local' }) },
      }),
      new DIDResolverPlugin({ resolver }),
      new DataStoreJson({ notifyUpdate: async () => {} }),
      didcomm,
      new MessageHandler({
        messageHandlers: [
          new DIDCommMessageHandler(),
          new CoordinateMediationV3RecipientMessageHandler(),
          new PickupRecipientMessageHandler(),
        ],
      }),
    ],
  })
}

// A did:peer:2 whose DIDCommMessaging service routes through the mediator (Veramo's peer
// provider cannot add a service later, so the grant's routing DID is the one it was made with).
async function identity(agent, mediatorDid) {
  return agent.didManagerCreate({
    provider: 'did:peer',
    options: {
      num_algo: 2,
      service: {
        id: '#didcomm-mediator',
        type: 'DIDCommMessaging',
        serviceEndpoint: { uri: mediatorDid, accept: ['didcomm/v2'] },
      },
    },
  })
}

// Sends one of Veramo's protocol messages to the mediator the way Veramo's code does (pack,
// remember it, sendDIDCommMessage); returns the mediator's answer as Veramo's handlers left it.
async function send(agent, message) {
  await agent.dataStoreSaveMessage({
    message: {
      type: message.type,
      from: message.from,
      to: message.to[0],
      id: message.id,
      data: message.body,
      createdAt: message.created_time,
    },
  })
  const packedMessage = await agent.packDIDCommMessage({ message, packing: 'authcrypt' })
  const sent = await agent.sendDIDCommMessage({
    packedMessage,
    messageId: message.id,
    recipientDidUrl: message.to[0],
  })
  if (!sent.returnMessage) fail(`the mediator sent no answer to ${message.type}`)
  return sent.returnMessage
}

function expect(answer, type, what) {
  if (answer.type !== type) {
    fail(`${what}: expected ${type}, got ${answer.type} ${JSON.stringify(answer.data)}`)
  }
  return answer
}

async function pickup(mediatorDid) {
  const agent = veramo(new SpecEnvelopes())
  const me = await identity(agent, mediatorDid)
  await loadSecrets(me)

  const grant = await send(agent, createV3MediateRequestMessage(me.did, mediatorDid))
  expect(grant, CoordinateMediation.MEDIATE_GRANT, 'mediate-request')
  const update = await send(
    agent,
    createV3RecipientUpdateMessage(me.did, mediatorDid, [
      { recipient_did: me.did, action: UpdateAction.ADD },
    ]),
  )
  expect(update, CoordinateMediation.RECIPIENT_UPDATE_RESPONSE, 'recipient-update')
  const query = await send(agent, createV3RecipientQueryMessage(me.did, mediatorDid))
  expect(query, CoordinateMediation.RECIPIENT_QUERY_RESPONSE, 'recipient-query')
  out({
    step: 'registered',
    did: me.did,
    routing_did: grant.data.routing_did,
    updates: update.data.updated ?? update.data.updates,
    recipients: query.data.dids,
  })

  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  await lines.next()

  const before = expect(
    await send(agent, createV3StatusRequestMessage(me.did, mediatorDid)),
    STATUS,
    'status-request',
  )
  const seen = unpacked.length
  const delivery = expect(
    await send(agent, createV3DeliveryRequestMessage(me.did, mediatorDid)),
    DELIVERY,
    'delivery-request',
  )
  // The messages Veramo's Pickup handler took out of the delivery and handled, and what it
  // acknowledged (the mediator's answer to its messages-received is unpacked here too).
  const handled = unpacked.slice(seen).map((u) => u.message)
  const after = expect(
    await send(agent, createV3StatusRequestMessage(me.did, mediatorDid)),
    STATUS,
    'status-request after messages-received',
  )
  out({
    step: 'picked-up',
    waiting_before: before.data.message_count,
    delivered: delivery.attachments.map((a) => a.id),
    received: handled.filter((m) => !m.type.startsWith('https://didcomm.org/messagepickup/')),
    acknowledged: handled.some((m) => m.type === STATUS),
    waiting_after: after.data.message_count,
  })
}

// Veramo's own packer, unchanged, to show what a stock Veramo client sends.
async function stock(mediatorDid) {
  const agent = veramo(new DIDComm())
  const me = await identity(agent, mediatorDid)
  const request = createV3MediateRequestMessage(me.did, mediatorDid)
  const authcrypt = (await agent.packDIDCommMessage({ message: request, packing: 'authcrypt' }))
    .message
  const anoncrypt = (await agent.packDIDCommMessage({ message: request, packing: 'anoncrypt' }))
    .message
  // The DIDComm v2.1 headers Veramo leaves out, patched into its protected header: `apv`
  // (SHA-256 of the sorted recipient kids joined by ".") and, for authcrypt, `apu` (the
  // sender's kid). What remains wrong is Veramo's key derivation (ECDH-1PU draft 3, and no
  // apu/apv in its Concat KDF), so the key wrap cannot open.
  const patched = (envelope) => {
    const jwe = JSON.parse(envelope)
    const header = JSON.parse(decodeBase64url(jwe.protected))
    const kids = jwe.recipients.map((r) => r.header.kid).sort()
    header.apv = bytesToBase64url(createHash('sha256').update(kids.join('.')).digest())
    if (header.skid) header.apu = encodeBase64url(header.skid)
    jwe.protected = encodeBase64url(JSON.stringify(header))
    return JSON.stringify(jwe)
  }
  out({
    step: 'stock',
    did: me.did,
    authcrypt,
    anoncrypt,
    authcrypt_patched: patched(authcrypt),
    anoncrypt_patched: patched(anoncrypt),
  })
}

// A stop for a driver left waiting (an agent that never answers, a test that died): not a
// measure of anything, just no process left behind.
setTimeout(() => fail('gave up after 10 minutes'), 600_000).unref()

const [mode, mediatorDid, from] = process.argv.slice(2)
if (!mediatorDid) fail('usage: node driver.mjs pickup|stock|plaintext <mediator-did> [from]')
try {
  if (mode === 'pickup') await pickup(mediatorDid)
  else if (mode === 'stock') await stock(mediatorDid)
  else if (mode === 'plaintext') {
    out({ step: 'plaintext', message: createV3MediateRequestMessage(from, mediatorDid) })
  }
  else fail(`unknown mode ${mode}`)
  process.exit(0)
} catch (e) {
  fail(e?.stack ?? String(e))
}
