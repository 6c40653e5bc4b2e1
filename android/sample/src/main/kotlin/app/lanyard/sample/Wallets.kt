package app.lanyard.sample

import android.content.Context
import app.lanyard.wallet.AndroidKeystoreKeyProtector
import app.lanyard.wallet.LanyardWallet

/** The one open wallet of the process: the activity and the messaging service share it (the
 *  store is held by one open at a time). */
object Wallets {
    @Volatile private var wallet: LanyardWallet? = null

    fun open(context: Context): LanyardWallet =
        wallet ?: synchronized(this) {
            wallet ?: LanyardWallet.open(
                context.filesDir.resolve("wallet").path,
                AndroidKeystoreKeyProtector(),
            ).also { wallet = it }
        }
}
