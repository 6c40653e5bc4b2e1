package app.lanyard.sample

import android.content.Intent
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.camera.core.ImageAnalysis
import androidx.camera.view.LifecycleCameraController
import androidx.camera.view.PreviewView
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.mutableStateOf
import androidx.compose.ui.viewinterop.AndroidView
import androidx.lifecycle.lifecycleScope
import app.lanyard.wallet.AcceptedInvitation
import app.lanyard.wallet.CredentialInfo
import app.lanyard.wallet.LanyardWallet
import app.lanyard.wallet.PresentationRequestInfo
import app.lanyard.wallet.WalletListener
import app.lanyard.wallet.core.WalletEvent
import com.google.firebase.messaging.FirebaseMessaging
import com.google.mlkit.vision.barcode.BarcodeScanning
import com.google.mlkit.vision.common.InputImage
import kotlinx.coroutines.launch

/** Scan, open links, list, present: every rule lives in Rust; this is scanner, keystore, screens. */
class MainActivity : ComponentActivity(), WalletListener {
    private lateinit var wallet: LanyardWallet
    private val credentials = mutableStateOf(listOf<CredentialInfo>())
    private val requests = mutableStateOf(listOf<PresentationRequestInfo>())
    private val status = mutableStateOf("")
    private val scanning = mutableStateOf(false)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        wallet = Wallets.open(applicationContext)
        wallet.setListener(this)
        wallet.setAutoAccept(true)
        intent?.data?.let { accept(it.toString()) }
        refresh()
        setContent {
            MaterialTheme {
                if (scanning.value) Scanner { text -> scanning.value = false; accept(text) }
                else Column {
                    Button(onClick = { scanning.value = true }) { Text("Scan") }
                    Text(status.value)
                    LazyColumn {
                        items(requests.value) { request ->
                            Button(onClick = { present(request) }, enabled = request.matchingCredentialIds.isNotEmpty()) {
                                Text("${request.verifierName} (${request.verifiedDomain ?: "domain not verified"}): ${request.purpose}")
                            }
                        }
                        items(credentials.value) { credential ->
                            Text("${credential.name ?: "Credential"} from ${credential.issuerName}")
                            credential.fields.forEach { Text("  ${it.name}: ${it.value}") }
                        }
                    }
                }
            }
        }
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        intent.data?.let { accept(it.toString()) }
    }

    override fun onResume() {
        super.onResume()
        lifecycleScope.launch { runCatching { wallet.startLive() } }
    }

    override fun onPause() {
        super.onPause()
        lifecycleScope.launch { wallet.stopLive() }
    }

    override fun onEvent(event: WalletEvent) {
        runOnUiThread {
            when (event) {
                is WalletEvent.CredentialsRemoved -> status.value = "${event.count} credential(s) removed"
                is WalletEvent.Problem -> status.value = event.message
                else -> {}
            }
            refresh()
        }
    }

    private fun refresh() {
        credentials.value = runCatching { wallet.credentials() }.getOrDefault(emptyList())
        requests.value = runCatching { wallet.presentationRequests() }.getOrDefault(emptyList())
    }

    private fun accept(text: String) = lifecycleScope.launch {
        try {
            when (val accepted = wallet.acceptInvitation(text)) {
                is AcceptedInvitation.Connection -> {
                    status.value = "Connected with ${accepted.connection.label}"
                    registerForWakes()
                }
                is AcceptedInvitation.PresentationRequest -> status.value = "${accepted.request.verifierName} (${accepted.request.verifiedDomain ?: "domain not verified"}) asks for a credential"
            }
            wallet.sync()
        } catch (error: Exception) {
            status.value = error.message ?: "$error"
        }
        refresh()
    }

    /** Now that the wallet has a mediator: ask it to wake this phone through FCM (later token
     *  changes reach LanyardMessagingService.onNewToken). */
    private fun registerForWakes() {
        FirebaseMessaging.getInstance().token.addOnSuccessListener { token ->
            lifecycleScope.launch { runCatching { PushWake(wallet).onNewToken(token) } }
        }
    }

    private fun present(request: PresentationRequestInfo) = lifecycleScope.launch {
        try {
            wallet.present(request.id, request.matchingCredentialIds.take(1))
            wallet.sync()
        } catch (error: Exception) {
            status.value = error.message ?: "$error"
        }
        refresh()
    }

    /** CameraX preview with ML Kit reading QR codes. */
    @androidx.compose.runtime.Composable
    private fun Scanner(found: (String) -> Unit) {
        val scanner = BarcodeScanning.getClient()
        AndroidView(factory = { context ->
            val controller = LifecycleCameraController(context)
            controller.setImageAnalysisAnalyzer(context.mainExecutor) { proxy ->
                val media = proxy.image
                if (media == null) { proxy.close(); return@setImageAnalysisAnalyzer }
                scanner.process(InputImage.fromMediaImage(media, proxy.imageInfo.rotationDegrees))
                    .addOnSuccessListener { codes -> codes.firstOrNull()?.rawValue?.let(found) }
                    .addOnCompleteListener { proxy.close() }
            }
            controller.imageAnalysisBackpressureStrategy = ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST
            controller.bindToLifecycle(this)
            PreviewView(context).apply { this.controller = controller }
        })
    }
}
