package app.lanyard.sample

import app.lanyard.wallet.LanyardWallet
import app.lanyard.wallet.PushPlatform

/**
 * What the app does with Firebase Cloud Messaging, free of the Firebase SDK (so it compiles,
 * and runs, on a plain JVM as well: tests/tests/bindings.rs compiles it with the bindings).
 * [LanyardMessagingService] calls it from FirebaseMessagingService's callbacks.
 */
class PushWake(private val wallet: LanyardWallet) {
    /** A new FCM registration token (first start, or Firebase rotated it): the mediator
     *  replaces the one it held. Refused until the wallet has a mediator (no invitation yet). */
    suspend fun onNewToken(token: String) = wallet.registerPush(PushPlatform.FCM, token)

    /** An FCM data message. The mediator's wake is data-only and names nothing
     *  (`{"lanyard": "wake"}`): the wallet picks up what waits, processes and acknowledges it.
     *  Returns whether it was a wake. */
    suspend fun onMessage(data: Map<String, String>): Boolean {
        if (data["lanyard"] != "wake") return false
        wallet.sync()
        return true
    }

    /** The customer turned wake-ups off. */
    suspend fun stop() = wallet.unregisterPush()
}
