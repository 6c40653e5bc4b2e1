// The sample app: scan an invite or a verifier's QR code (AVFoundation), open universal or
// custom-scheme links, list credentials, answer a request. Every rule lives in Rust; this is
// the scanner, the keystore and the screens.
import AVFoundation
import LanyardWallet
import SwiftUI

@MainActor
final class WalletModel: ObservableObject, WalletListener {
    @Published var credentials: [CredentialInfo] = []
    @Published var requests: [PresentationRequestInfo] = []
    @Published var status = ""
    let wallet: LanyardWallet

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
                _ = try await wallet.sync()
            } catch {
                status = error.localizedDescription
            }
            refresh()
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
    @StateObject var model = WalletModel()
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

@main
struct LanyardSampleApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
