package app.lanyard.wallet

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * A [KeyProtector] over the Android Keystore: the wallet store's data key is encrypted with an
 * AES-256-GCM key that the Keystore generates and never releases (StrongBox when the device
 * has it). The wrapped blob is the 12-byte IV followed by the ciphertext.
 */
class AndroidKeystoreKeyProtector(private val alias: String = "app.lanyard.wallet.store-key") : KeyProtector {
    private fun key(): SecretKey {
        val store = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (store.getKey(alias, null) as? SecretKey)?.let { return it }
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore")
            .apply { init(spec) }
            .generateKey()
    }

    override fun wrap(dataKey: ByteArray): ByteArray = try {
        val cipher = Cipher.getInstance("AES/GCM/NoPadding").apply { init(Cipher.ENCRYPT_MODE, key()) }
        cipher.iv + cipher.doFinal(dataKey)
    } catch (error: Exception) {
        throw KeyProtectorException.Failed("the Android Keystore could not wrap: ${error.message}")
    }

    override fun unwrap(wrapped: ByteArray): ByteArray = try {
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(128, wrapped, 0, 12))
        cipher.doFinal(wrapped, 12, wrapped.size - 12)
    } catch (error: Exception) {
        throw KeyProtectorException.Failed("the Android Keystore could not unwrap: ${error.message}")
    }
}
