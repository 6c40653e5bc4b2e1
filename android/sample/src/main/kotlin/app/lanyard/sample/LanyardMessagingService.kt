package app.lanyard.sample

import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage
import kotlinx.coroutines.runBlocking

/**
 * The FCM entry point: a new token is registered with the mediator, a wake runs a sync. Both
 * callbacks run on a background thread FCM gives the service, with a time budget (about 20 s
 * for a high-priority message): blocking on the suspend calls is what the service expects.
 * Not compiled on this machine (no Android SDK, no Firebase SDK); its logic is [PushWake].
 */
class LanyardMessagingService : FirebaseMessagingService() {
    private val push by lazy { PushWake(Wallets.open(applicationContext)) }

    override fun onNewToken(token: String) {
        runBlocking { runCatching { push.onNewToken(token) } }
    }

    override fun onMessageReceived(message: RemoteMessage) {
        runBlocking { runCatching { push.onMessage(message.data) } }
    }
}
