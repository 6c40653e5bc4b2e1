// A KeyProtector over the iOS Keychain and the Secure Enclave: the wallet store's data key is
// encrypted to a P-256 key that never leaves the Secure Enclave (ECIES, X9.63 / AES-GCM), so
// the wrapped blob in the store's header is useless off this device. Without a Secure Enclave
// (the simulator) the key lives in the Keychain, this-device-only.
import Foundation
import Security

public final class KeychainKeyProtector: KeyProtector {
    private let tag: Data
    private let algorithm = SecKeyAlgorithm.eciesEncryptionCofactorVariableIVX963SHA256AESGCM

    /// `tag` names the Keychain key (one per wallet).
    public init(tag: String = "app.lanyard.wallet.store-key") {
        self.tag = Data(tag.utf8)
    }

    private func privateKey() throws -> SecKey {
        let query: [String: Any] = [
            kSecClass as String: kSecClassKey,
            kSecAttrApplicationTag as String: tag,
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecReturnRef as String: true,
        ]
        var item: CFTypeRef?
        if SecItemCopyMatching(query as CFDictionary, &item) == errSecSuccess, let item {
            return (item as! SecKey)
        }
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            nil, kSecAttrAccessibleWhenUnlockedThisDeviceOnly, .privateKeyUsage, &error)
        else { throw KeyProtectorError.Failed(reason: "no access control: \(String(describing: error))") }
        var attributes: [String: Any] = [
            kSecAttrKeyType as String: kSecAttrKeyTypeECSECPrimeRandom,
            kSecAttrKeySizeInBits as String: 256,
            kSecPrivateKeyAttrs as String: [
                kSecAttrIsPermanent as String: true,
                kSecAttrApplicationTag as String: tag,
                kSecAttrAccessControl as String: access,
            ],
        ]
        #if !targetEnvironment(simulator)
        attributes[kSecAttrTokenID as String] = kSecAttrTokenIDSecureEnclave
        #endif
        guard let key = SecKeyCreateRandomKey(attributes as CFDictionary, &error) else {
            throw KeyProtectorError.Failed(reason: "cannot create the store key: \(String(describing: error))")
        }
        return key
    }

    public func wrap(dataKey: Data) throws -> Data {
        guard let publicKey = SecKeyCopyPublicKey(try privateKey()) else {
            throw KeyProtectorError.Failed(reason: "the store key has no public key")
        }
        var error: Unmanaged<CFError>?
        guard let wrapped = SecKeyCreateEncryptedData(publicKey, algorithm, dataKey as CFData, &error) else {
            throw KeyProtectorError.Failed(reason: "wrapping failed: \(String(describing: error))")
        }
        return wrapped as Data
    }

    public func unwrap(wrapped: Data) throws -> Data {
        var error: Unmanaged<CFError>?
        guard let key = SecKeyCreateDecryptedData(try privateKey(), algorithm, wrapped as CFData, &error) else {
            throw KeyProtectorError.Failed(reason: "unwrapping failed: \(String(describing: error))")
        }
        return key as Data
    }
}
