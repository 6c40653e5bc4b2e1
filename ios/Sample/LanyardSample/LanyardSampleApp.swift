// The sample app: scan an invite or a verifier's QR code (AVFoundation), open universal or
// custom-scheme links, list credentials, answer a request, and be woken by a background push
// (APNs) to sync while asleep. Every rule lives in Rust; this is the scanner, the keystore, the
// push entry points and the screens.
import AVFoundation
import LanyardWallet
import SwiftUI
import UIKit

@MainActor
final class WalletModel: ObservableObject, WalletListener {
    /// The one wallet of the app: the screens and the push entry points share it (its store is
    /// held by one open at a time).
    static let shared = WalletModel()

    @Published var credentials: [CredentialInfo] = []
    @Published var requests: [PresentationRequestInfo] = []
    @Published var status = ""
    let wallet: LanyardWallet
    /// The APNs device token, kept to register once the wallet has a mediator.
    private var pushToken: String?

    init() {
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("wallet").path
        wallet = try! LanyardWallet.open(dir: dir, protector: KeychainKeyProtector())
        wallet.setListener(listener: self)
        refresh()
    }

    nonisolated func onEvent(event: WalletEvent) {
        Task { @MainActor in
            switch event {
            case .credentialsRemoved(let template, let count):
                status = "\(count) credential(s) removed (\(template ?? "by you"))"
            case .problem(let message):
                status = message
            default:
                break
            }
            refresh()
        }
    }

    func refresh() {
        credentials = (try? wallet.credentials()) ?? []
        requests = (try? wallet.presentationRequests()) ?? []
    }

    /// Whatever the scanner or the OS handed over: an invite or a verifier's request.
    func accept(_ text: String) {
        Task {
            do {
                _ = try await wallet.acceptInvitation(text: text)
                wallet.setAutoAccept(on: true)
                await registerPush()
                _ = try await wallet.sync()
            } catch {
                status = error.localizedDescription
            }
            refresh()
        }
    }

    /// Asks the mediator to wake this phone through APNs (`token`: a new one from the system,
    /// or the one kept). Before the first invitation there is no mediator yet: kept for then.
    func registerPush(token: String? = nil) async {
        if let token { pushToken = token }
        guard let pushToken else { return }
        do {
            try await wallet.registerPush(platform: .apns, token: pushToken)
        } catch {
            // No mediator yet (no invitation accepted), or the mediator has no gateway.
        }
    }

    /// A background push woke the app: it names nothing; pick up what waits.
    func woken() async -> UIBackgroundFetchResult {
        do {
            let report = try await wallet.sync()
            refresh()
            return report.processed > 0 ? .newData : .noData
        } catch {
            return .failed
        }
    }

    func present(_ request: PresentationRequestInfo) {
        Task {
            do {
                try await wallet.present(requestId: request.id, credentialIds: Array(request.matchingCredentialIds.prefix(1)))
                _ = try await wallet.sync()
            } catch {
                status = error.localizedDescription
            }
            refresh()
        }
    }
}

struct ScannerView: UIViewControllerRepresentable {
    let found: (String) -> Void

    func makeUIViewController(context: Context) -> ScannerController {
        let controller = ScannerController()
        controller.found = found
        return controller
    }

    func updateUIViewController(_ controller: ScannerController, context: Context) {}
}

final class ScannerController: UIViewController, AVCaptureMetadataOutputObjectsDelegate {
    var found: ((String) -> Void)?
    private let session = AVCaptureSession()

    override func viewDidLoad() {
        super.viewDidLoad()
        guard let camera = AVCaptureDevice.default(for: .video),
              let input = try? AVCaptureDeviceInput(device: camera) else { return }
        session.addInput(input)
        let output = AVCaptureMetadataOutput()
        session.addOutput(output)
        output.setMetadataObjectsDelegate(self, queue: .main)
        output.metadataObjectTypes = [.qr]
        let preview = AVCaptureVideoPreviewLayer(session: session)
        preview.frame = view.layer.bounds
        preview.videoGravity = .resizeAspectFill
        view.layer.addSublayer(preview)
        DispatchQueue.global(qos: .userInitiated).async { self.session.startRunning() }
    }

    func metadataOutput(_ output: AVCaptureMetadataOutput, didOutput objects: [AVMetadataObject], from connection: AVCaptureConnection) {
        guard let code = objects.first as? AVMetadataMachineReadableCodeObject, let text = code.stringValue else { return }
        session.stopRunning()
        found?(text)
    }
}

struct ContentView: View {
    @ObservedObject var model = WalletModel.shared
    @State var scanning = false

    var body: some View {
        NavigationStack {
            List {
                Section("Requests") {
                    ForEach(model.requests, id: \.id) { request in
                        Button("\(request.verifierName) (\(request.verifiedDomain ?? "domain not verified")): \(request.purpose)") { model.present(request) }
                            .disabled(request.matchingCredentialIds.isEmpty)
                    }
                }
                Section("Credentials") {
                    ForEach(model.credentials, id: \.id) { credential in
                        VStack(alignment: .leading) {
                            Text(credential.name ?? "Credential").font(.headline)
                            Text(credential.issuerName).font(.subheadline)
                            ForEach(credential.fields, id: \.name) { field in
                                Text("\(field.name): \(field.value)").font(.caption)
                            }
                        }
                    }
                }
                if !model.status.isEmpty { Text(model.status).foregroundStyle(.secondary) }
            }
            .navigationTitle("Lanyard")
            .toolbar { Button("Scan") { scanning = true } }
            .refreshable { _ = try? await model.wallet.sync(); model.refresh() }
            .sheet(isPresented: $scanning) {
                ScannerView { text in scanning = false; model.accept(text) }
            }
            // Universal links (https://<agent>/i/<code>) and the lanyard:// scheme.
            .onOpenURL { url in model.accept(url.absoluteString) }
        }
    }
}

/// Push wake-up: registers for remote notifications at launch (a background push needs no
/// permission prompt), hands the device token to the mediator, and syncs when woken. Needs the
/// Push Notifications capability and Background Modes > Remote notifications (Info.plist
/// `UIBackgroundModes` = `remote-notification`). Not compiled on this machine (no Swift).
final class AppDelegate: NSObject, UIApplicationDelegate {
    func application(
        _ application: UIApplication,
        didFinishLaunchingWithOptions launchOptions: [UIApplication.LaunchOptionsKey: Any]? = nil
    ) -> Bool {
        application.registerForRemoteNotifications()
        return true
    }

    func application(_ application: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken deviceToken: Data) {
        let hex = deviceToken.map { String(format: "%02x", $0) }.joined()
        Task { await WalletModel.shared.registerPush(token: hex) }
    }

    func application(_ application: UIApplication, didFailToRegisterForRemoteNotificationsWithError error: Error) {
        Task { @MainActor in WalletModel.shared.status = "Push unavailable: \(error.localizedDescription)" }
    }

    func application(
        _ application: UIApplication,
        didReceiveRemoteNotification userInfo: [AnyHashable: Any]
    ) async -> UIBackgroundFetchResult {
        await WalletModel.shared.woken()
    }
}

@main
struct LanyardSampleApp: App {
    @UIApplicationDelegateAdaptor(AppDelegate.self) var appDelegate

    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
