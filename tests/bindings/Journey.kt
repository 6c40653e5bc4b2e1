// The customer's journey through the Kotlin bindings only, on the JVM (JNA), against a real
// agent on loopback: the KeyProtector and the WalletListener are implemented in Kotlin; the
// wallet accepts an invite, syncs, lists the credential, presents it, and sees it removed
// after the template is deleted; then the error kinds cross intact. Prints one line per step.
//
// Usage: Journey <agent url> <organisation API key> <work dir>

import app.lanyard.wallet.*
import app.lanyard.wallet.core.WalletEvent
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.security.SecureRandom
import kotlinx.coroutines.runBlocking

lateinit var api: String
lateinit var key: String
val http: HttpClient = HttpClient.newHttpClient()

/** Calls the issuer API; returns the response body (JSON text). */
fun call(method: String, path: String, body: String? = null): String {
    val request = HttpRequest.newBuilder(URI.create(api + path))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
        .build()
    val response = http.send(request, HttpResponse.BodyHandlers.ofString())
    check(response.statusCode() in 200..299) { "$method $path answered ${response.statusCode()}: ${response.body()}" }
    return response.body()
}

/** The string member `name` of a JSON text (the first one). */
fun field(json: String, name: String): String =
    Regex("\"$name\":\"([^\"]*)\"").find(json)?.groupValues?.get(1) ?: error("no $name in $json")

/** A stand-in for the Android Keystore (tests only): XOR with a random pad held here. */
class Keystore(private val fail: Boolean = false) : KeyProtector {
    private val pad = ByteArray(64).also { SecureRandom().nextBytes(it) }

    override fun wrap(dataKey: ByteArray): ByteArray {
        if (fail) throw KeyProtectorException.Failed("the keystore is locked")
        return ByteArray(dataKey.size) { (dataKey[it].toInt() xor pad[it].toInt()).toByte() }
    }

    override fun unwrap(wrapped: ByteArray): ByteArray = wrap(wrapped)
}

class Events : WalletListener {
    val seen = java.util.Collections.synchronizedList(mutableListOf<WalletEvent>())
    override fun onEvent(event: WalletEvent) {
        seen.add(event)
    }
}

fun step(text: String) = println("step $text")

const val B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

fun base58(bytes: ByteArray): String {
    var number = java.math.BigInteger(1, bytes)
    val text = StringBuilder()
    val radix = java.math.BigInteger.valueOf(58)
    while (number.signum() > 0) {
        val (quotient, rest) = number.divideAndRemainder(radix)
        text.insert(0, B58[rest.toInt()])
        number = quotient
    }
    bytes.takeWhile { it.toInt() == 0 }.forEach { _ -> text.insert(0, '1') }
    return text.toString()
}

/** A did:peer:2 nobody holds the keys of, whose service is `endpoint`; without a key
 *  agreement key when `agreement` is false (nothing can be encrypted to it). */
fun strangerDid(endpoint: String, agreement: Boolean): String {
    val random = SecureRandom()
    fun key(prefix: ByteArray) = "z" + base58(prefix + ByteArray(32).also { random.nextBytes(it) })
    val service = """{"t":"dm","s":{"uri":"$endpoint","a":["didcomm/v2"]}}"""
    val encoded = java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(service.toByteArray())
    val x25519 = if (agreement) ".E" + key(byteArrayOf(0xec.toByte(), 0x01)) else ""
    return "did:peer:2$x25519.V${key(byteArrayOf(0xed.toByte(), 0x01))}.S$encoded"
}

fun invitationFrom(did: String, expires: Long? = null) =
    """{"type":"https://didcomm.org/out-of-band/2.0/invitation","id":"${java.util.UUID.randomUUID()}","from":"$did",""" +
        (if (expires != null) "\"expires_time\":$expires," else "") + """"body":{"accept":["didcomm/v2"]}}"""

suspend fun expectError(kind: String, action: suspend () -> Unit) {
    try {
        action()
    } catch (error: LanyardException) {
        check(error::class.simpleName == kind) { "expected $kind, got ${error::class.simpleName}: ${error.message}" }
        step("error $kind: ${error.message}")
        return
    }
    error("expected $kind, nothing was thrown")
}

fun main(args: Array<String>) = runBlocking {
    api = args[0] + "/core/api/v1/programmatic"
    key = args[1]
    val work = args[2]
    // The agent runs on this machine: loopback is allowed, as in development.
    val keystore = Keystore()
    val wallet = LanyardWallet.openWithNetwork("$work/wallet", keystore, NetworkOptions(allowLoopback = true, allow = listOf()))
    val events = Events()
    wallet.setListener(events)

    val template = field(call("POST", "/credential/template", """{"templateName":"Member","credentialIssuer":"Acme","credentialType":"Membership","logoURL":"https://example.com/logo.png","credentialExpiration":null,"customFields":["level"],"descriptions":["Level"],"numberOfCredentials":null}"""), "templateId")
    val customer = call("POST", "/customer", """{"name":"Jane","medium":"email","email":"jane@example.com","autoIssue":{"templateId":"$template","values":{"level":"gold"}}}""")
    val accepted = wallet.acceptInvitation(field(customer, "url"))
    check(accepted is AcceptedInvitation.Connection) { "a connection: $accepted" }
    step("connected ${accepted.connection.label}")

    wallet.sync()
    val offers = wallet.offers()
    check(offers.size == 1 && offers[0].fields.any { it.name == "level" && it.value == "gold" }) { "the offer: $offers" }
    wallet.acceptOffer(offers[0].id)
    wallet.sync()
    val credentials = wallet.credentials()
    check(credentials.size == 1 && credentials[0].templateId == template) { "the credential: $credentials" }
    val credential = credentials[0]
    step("stored ${credential.id} from ${credential.issuerName}")

    val verification = call("POST", "/verification", """{"templateId":"$template","requiredFields":["level"]}""")
    val request = wallet.acceptInvitation(field(verification, "url"))
    check(request is AcceptedInvitation.PresentationRequest) { "a request: $request" }
    check(request.request.matchingCredentialIds == listOf(credential.id)) { "the match: $request" }
    // The identity the wallet can prove: the verifier's DID and, checked, its domain.
    check(request.request.verifierDid.startsWith("did:peer:2")) { "the verifier's DID: $request" }
    check(request.request.verifiedDomain == args[0].substringAfter("://")) { "the verified domain: $request" }
    wallet.present(request.request.id, listOf(credential.id))
    wallet.sync()
    val result = events.seen.filterIsInstance<WalletEvent.PresentationResult>().lastOrNull()
    check(result != null && result.verified) { "verified: ${events.seen}" }
    val state = call("GET", "/verification/" + field(verification, "id"))
    check(field(state, "state") == "verified" && state.contains("\"level\":\"gold\"")) { "the verifier: $state" }
    step("presented verified")

    call("DELETE", "/credential/template/$template")
    wallet.sync()
    check(wallet.credentials().isEmpty()) { "removed after deletion" }
    val removed = events.seen.filterIsInstance<WalletEvent.CredentialsRemoved>().lastOrNull()
    check(removed != null && removed.templateId == template && removed.count == 1UL) { "the event: ${events.seen}" }
    step("removed ${removed.count}")

    expectError("InvalidInvitation") { wallet.acceptInvitation("not an invitation") }
    expectError("InvitationExpired") { wallet.acceptInvitation(invitationFrom("did:example:a", expires = 1)) }
    val agentDidcomm = args[0] + "/didcomm"
    expectError("Refused") { wallet.acceptInvitation(invitationFrom(strangerDid(agentDidcomm, agreement = true))) }
    expectError("Message") { wallet.acceptInvitation(invitationFrom(strangerDid(agentDidcomm, agreement = false))) }
    expectError("InvitationUsed") { wallet.acceptInvitation(field(verification, "url")) }
    expectError("Unreachable") { wallet.acceptInvitation("http://127.0.0.1:9/i/abcdefabcdef") }
    // The cloud metadata address is never fetched.
    expectError("Refused") { wallet.acceptInvitation("https://169.254.169.254/i/abcdefabcdef") }
    expectError("NotFound") { wallet.acceptOffer("no-such-offer") }
    expectError("WrongState") { wallet.present(request.request.id, listOf(credential.id)) }
    expectError("KeyProtector") { LanyardWallet.open("$work/wallet", Keystore(fail = true)) }
    expectError("Storage") { LanyardWallet.openWithPassphrase("$work/wallet", "a passphrase") }
    // The wallet is still open: a second open of its store is refused for now (transient).
    expectError("Busy") { LanyardWallet.open("$work/wallet", keystore) }
    step("done")
}
