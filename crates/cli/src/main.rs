//! `apg-pq`: argument parsing only; the commands are in lib.rs.
use apg_pq::{Algorithm, CliError, PublicKind};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  verify: the signature is not valid
  2  usage error (unknown option, missing argument)
  3  bad input: malformed key file, envelope or stream, key of the wrong type, sealed
     to another key, an input over 256 MiB (use seal --stream), a truncated stream header;
     fetch-key, backup: a host other than the loopback without --sslmode verify-full
  4  open: decryption failed (wrong key, wrong AAD, modified or truncated data); nothing is written
  5  a file could not be read or written (a secret key file is never overwritten)
  6  fetch-key, backup: the database could not be reached or refused the query
  7  fetch-key: the key's id differs from --expect-kid; nothing is written
  8  escrow reseal: the request statement is not approved by the pinned approvers, is for
     another key, escrow or master key, or its wait is not over; nothing is written

Secrets never come from the command line: secret keys are files (created
0600), the database password comes from PGPASSWORD or --password-file.
Outputs go to a temporary file renamed into place when complete. Long work
(seal --stream, open of a stream) shows a progress bar when standard error
is a terminal (--quiet hides it).
Byte formats: docs/FORMAT.md. Client-side encryption: docs/CLIENT.md.";

/// Client-side post-quantum encryption and signatures for apg_pqcrypto:
/// envelopes sealed to ML-KEM-768 or X-Wing keys that a PostgreSQL server
/// opens with pq_unseal, batches, streams of any size, ML-DSA-65
/// signatures pq_verify checks, and the reverse.
#[derive(Parser)]
#[command(name = "apg-pq", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    #[value(name = "ml-kem-768")]
    MlKem768,
    /// ML-KEM-1024 (CNSA 2.0)
    #[value(name = "ml-kem-1024")]
    MlKem1024,
    /// X25519 + ML-KEM-768 (draft-connolly-cfrg-xwing-kem)
    #[value(name = "x-wing")]
    XWing,
    #[value(name = "ml-dsa-65")]
    MlDsa65,
    /// ML-DSA-87 (CNSA 2.0)
    #[value(name = "ml-dsa-87")]
    MlDsa87,
    /// SLH-DSA-SHA2-128s (FIPS 205): raw long-term signatures
    #[value(name = "slh-dsa-sha2-128s")]
    SlhDsa,
}

#[derive(Clone, Copy, ValueEnum)]
enum SignatureArg {
    #[value(name = "ml-dsa-65")]
    MlDsa65,
    /// ML-DSA-87 (CNSA 2.0)
    #[value(name = "ml-dsa-87")]
    MlDsa87,
    /// SLH-DSA-SHA2-128s (FIPS 205): with --raw only
    #[value(name = "slh-dsa-sha2-128s")]
    SlhDsa,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    /// the tenant's KEM public key, ML-KEM-768 or X-Wing (pq.tenant_public_key), to seal to
    Kem,
    /// the ML-DSA-65 verifying key (pq.tenant_verifying_key), to verify pq_sign
    Dsa,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a key pair: the secret key (seed: 64 bytes for ML-KEM, 32
    /// for X-Wing and ML-DSA) to a new 0600 file, the raw public key to
    /// another; prints the kid.
    Keygen {
        #[arg(long, value_enum, default_value = "ml-kem-768")]
        algorithm: AlgorithmArg,
        /// file for the secret key; must not exist
        #[arg(long)]
        secret_key: PathBuf,
        /// file for the public key (1184, 1568, 1216, 1952, 2592 or 32 bytes)
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Seal a file or stdin to an ML-KEM-768, ML-KEM-1024 or X-Wing public key (a
    /// tenant's, from fetch-key): a sealed envelope ('S', 'L' or 'X', FORMAT.md §3)
    /// that pq_unseal opens. --batch seals each line as an item of one batch
    /// (§3.3); --stream seals an input of any size in chunks (§12).
    Seal {
        /// the recipient's public key file (1184 or 1216 bytes)
        #[arg(long)]
        public_key: PathBuf,
        /// associated data bound to the envelope (UTF-8; e.g. the configuration key's name)
        #[arg(long, default_value = "")]
        aad: String,
        /// associated data as hex digits, for bytes that are not text (the
        /// config store's AAD, FORMAT.md §11.1)
        #[arg(long, conflicts_with_all = ["aad", "tsv"])]
        aad_hex: Option<String>,
        /// one item per input line (the newline is not sealed), one key
        /// encapsulation for all; writes one \x-hex item per line (bytea, COPY … CSV)
        #[arg(long, conflicts_with = "stream")]
        batch: bool,
        /// with --batch: each line is aad<TAB>value
        #[arg(long, requires = "batch")]
        tsv: bool,
        /// chunked stream for inputs of any size; opened by `open`, not by pq_unseal
        #[arg(long)]
        stream: bool,
        /// no progress bar
        #[arg(short, long)]
        quiet: bool,
        /// input file ("-" or absent: stdin)
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// output file ("-" or absent: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Open a sealed envelope, batch item or stream with an ML-KEM-768 or
    /// X-Wing secret key file; the plaintext file is created 0600 and only
    /// once everything is authenticated.
    Open {
        #[arg(long)]
        secret_key: PathBuf,
        #[arg(long, default_value = "")]
        aad: String,
        /// associated data as hex digits
        #[arg(long, conflicts_with = "aad")]
        aad_hex: Option<String>,
        /// no progress bar
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// output file (must not exist; "-" or absent: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Sign a file or stdin with an ML-DSA-65 secret key file: a signature
    /// envelope (FORMAT.md §5), or with --raw a raw FIPS 204 signature (pq_verify_with).
    Sign {
        #[arg(long)]
        secret_key: PathBuf,
        /// the seed's parameter set: ML-DSA-65 makes 'G' envelopes, ML-DSA-87 'H'
        #[arg(long, value_enum, default_value = "ml-dsa-65")]
        algorithm: SignatureArg,
        /// FIPS 204 context string (UTF-8, at most 255 bytes)
        #[arg(long, default_value = "")]
        context: String,
        #[arg(long)]
        raw: bool,
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Verify a signature envelope (pq_sign's or sign's) or a raw signature
    /// over a file or stdin; exit code 0 if valid, 1 if not.
    Verify {
        /// the signer's ML-DSA-65 public key file (1952 bytes)
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long)]
        signature: PathBuf,
        #[arg(long, default_value = "")]
        context: String,
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Open a blind index key exported by pq.export_index_key (its
    /// key_envelope) with your secret key file, checking that it is the key
    /// of version --kid and --context; writes the 32-byte key to a new
    /// 0600 file (docs/SEARCH.md, FORMAT.md §16.5).
    IndexKey {
        #[arg(long)]
        secret_key: PathBuf,
        /// the kid column pq.export_index_key returned (32 hex digits)
        #[arg(long)]
        kid: String,
        #[arg(long)]
        context: String,
        /// the key_envelope ("-" or absent: stdin)
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// the index key file to create (0600, must not exist)
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the blind index term (hex) of a value read from a file or
    /// stdin under an index key file: the same bytes as pq_blind_index
    /// (the value is taken byte for byte: no trailing newline).
    IndexTerm {
        #[arg(long)]
        index_key: PathBuf,
        /// term length in bits: a multiple of 8 from 16 to 256
        #[arg(long, default_value_t = 256)]
        bits: i64,
        /// exact, trim, casefold or trim,casefold
        #[arg(long, default_value = "exact")]
        normalization: String,
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Describe an envelope or stream (version, kind, kid, suite, lengths) as JSON, without any key.
    Inspect {
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Key escrow, for custodians (docs/FORMAT.md §14.1).
    #[command(subcommand)]
    Escrow(EscrowCommand),
    /// Save a disaster-recovery key backup: asks the database for
    /// pq.export_key_backup sealed to the recovery officer's public key and
    /// writes the bundle (0600). `backup reseal` re-seals a bundle to a
    /// restore key (docs/RECOVERY.md, FORMAT.md §15).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        /// database URL (postgresql://user@host:port/db, or host=/var/run/postgresql …); the role needs pq_admin
        #[arg(long, required = true)]
        url: Option<String>,
        /// file holding the database password (else PGPASSWORD)
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
        /// back up this tenant only (default: every tenant)
        #[arg(long)]
        tenant: Option<String>,
        /// the recovery officer's public key (ML-KEM-768 or X-Wing, from keygen)
        #[arg(long, required = true)]
        recipient_key: Option<PathBuf>,
        /// leave policies and grants out of the bundle
        #[arg(long)]
        no_metadata: bool,
        /// output file for the bundle (created 0600; must not exist)
        #[arg(short, long, required = true)]
        output: Option<PathBuf>,
    },
    /// Fetch a tenant's active public key from a database (TCP with TLS, or
    /// a Unix socket; the role needs pq_user and a grant on the tenant).
    FetchKey {
        /// postgresql://user@host:port/dbname, without a password
        #[arg(long)]
        url: String,
        /// file holding the password (else PGPASSWORD)
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value = "kem")]
        kind: KindArg,
        /// refuse the key unless its kid (hex, as pq.tenant_keys shows) is this
        #[arg(long)]
        expect_kid: Option<String>,
        /// file for the public key
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// TLS to the database (backup, fetch-key): a host other than the loopback
/// needs verify-full, unless told --insecure.
#[derive(clap::Args)]
struct TlsArgs {
    /// disable, prefer, require, verify-ca or verify-full (else the URL's sslmode, PGSSLMODE, or prefer)
    #[arg(long)]
    sslmode: Option<String>,
    /// the PEM root certificate(s) that verify the server (else the URL's sslrootcert, PGSSLROOTCERT, ~/.postgresql/root.crt)
    #[arg(long)]
    root_cert: Option<PathBuf>,
    /// connect to a host other than the loopback without verify-full (an attacker on the path could swap keys)
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    fn database<'a>(&'a self, url: &'a str, password_file: Option<&'a std::path::Path>) -> apg_pq::db::Database<'a> {
        apg_pq::db::Database {
            url,
            password_file,
            sslmode: self.sslmode.as_deref(),
            root_cert: self.root_cert.as_deref(),
            insecure: self.insecure,
        }
    }
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Open a key backup bundle with your (the recovery officer's) secret
    /// key and re-seal it to a cluster's restore key, offline; the keys in
    /// it are never written out.
    Reseal {
        /// the recovery officer's secret key (from keygen)
        #[arg(long)]
        secret_key: PathBuf,
        /// the bundle, as `apg-pq backup` saved it
        #[arg(long)]
        bundle: PathBuf,
        /// the restore key: the public key pq.restore_begin() returned on the target cluster
        #[arg(long)]
        restore_key: PathBuf,
        /// output file for the re-sealed bundle (created 0600; must not exist)
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum EscrowCommand {
    /// Check a recovery request's approved statement against the approver
    /// keys you pinned at the ceremony, then open your share record ('E')
    /// with your custodian secret key and re-seal the share to the
    /// request's public key ('R'), offline; the share itself is never
    /// written out. Prints what it checked (exit 8 if the statement fails).
    Reseal {
        /// your custodian secret key (from keygen: ML-KEM-768 or X-Wing)
        #[arg(long)]
        secret_key: PathBuf,
        /// your share record, as the escrow gave it to you
        #[arg(long)]
        share: PathBuf,
        /// the recovery request's public key
        #[arg(long)]
        request_key: PathBuf,
        /// the request's approved statement (pq.escrow_statement)
        #[arg(long)]
        statement: PathBuf,
        /// an approver's ML-DSA-65 public key pinned at the ceremony (repeat for each)
        #[arg(long = "approver-key", required = true)]
        approver_keys: Vec<PathBuf>,
        /// how many of those approvers must have signed
        #[arg(long)]
        approvals: usize,
        /// the least wait between request and recovery pinned at the ceremony (86400, 90m, 24h, 2d)
        #[arg(long)]
        min_wait: Option<String>,
        /// output file for the re-sealed share ("-" or absent: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read a recovery request's statement (from pq.escrow_request_recovery)
    /// and sign it with your approver's ML-DSA-65 secret key: the raw
    /// signature for pq.escrow_approve. Prints what you approve.
    Approve {
        /// your approver secret key (from keygen --algorithm ml-dsa-65)
        #[arg(long)]
        secret_key: PathBuf,
        /// the request's statement
        #[arg(long)]
        statement: PathBuf,
        /// output file for the signature ("-" or absent: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `--aad` as UTF-8 bytes, or `--aad-hex` decoded.
fn aad_bytes(aad: String, aad_hex: Option<String>) -> Result<Vec<u8>, CliError> {
    match aad_hex {
        Some(h) => hex::decode(h.trim()).map_err(|_| CliError::Input("--aad-hex is not an even number of hex digits".into())),
        None => Ok(aad.into_bytes()),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Keygen { algorithm, secret_key, public_key } => {
            let algorithm = match algorithm {
                AlgorithmArg::MlKem768 => Algorithm::MlKem768,
                AlgorithmArg::MlKem1024 => Algorithm::MlKem1024,
                AlgorithmArg::XWing => Algorithm::XWing,
                AlgorithmArg::MlDsa65 => Algorithm::MlDsa65,
                AlgorithmArg::MlDsa87 => Algorithm::MlDsa87,
                AlgorithmArg::SlhDsa => Algorithm::SlhDsa,
            };
            println!("{}", apg_pq::keygen(algorithm, &secret_key, &public_key)?);
        }
        Command::Seal { public_key, aad, aad_hex, batch, tsv, stream, quiet, input, output } => {
            let (input, output) = (input.as_deref(), output.as_deref());
            let aad = aad_bytes(aad, aad_hex)?;
            if batch {
                apg_pq::seal_batch(&public_key, &aad, tsv, input, output)?;
            } else if stream {
                apg_pq::seal_stream(&public_key, &aad, input, output, quiet)?;
            } else {
                apg_pq::seal(&public_key, &aad, input, output)?
            }
        }
        Command::Open { secret_key, aad, aad_hex, quiet, input, output } => {
            apg_pq::open(&secret_key, &aad_bytes(aad, aad_hex)?, input.as_deref(), output.as_deref(), quiet)?
        }
        Command::Sign { secret_key, algorithm, context, raw, input, output } => {
            let algorithm = match algorithm {
                SignatureArg::MlDsa65 => apg_pq::SignAlgorithm::MlDsa(pqcore::SignatureSuite::MlDsa65),
                SignatureArg::MlDsa87 => apg_pq::SignAlgorithm::MlDsa(pqcore::SignatureSuite::MlDsa87),
                SignatureArg::SlhDsa => apg_pq::SignAlgorithm::SlhDsa,
            };
            apg_pq::sign(&secret_key, algorithm, context.as_bytes(), raw, input.as_deref(), output.as_deref())?
        }
        Command::Verify { public_key, signature, context, input } => {
            apg_pq::verify(&public_key, &signature, context.as_bytes(), input.as_deref())?
        }
        Command::Inspect { input } => println!("{}", apg_pq::inspect(input.as_deref())?),
        Command::IndexKey { secret_key, kid, context, input, output } => {
            apg_pq::index_key(&secret_key, &kid, &context, input.as_deref(), &output)?
        }
        Command::IndexTerm { index_key, bits, normalization, input } => {
            println!("{}", apg_pq::index_term(&index_key, bits, &normalization, input.as_deref())?)
        }
        Command::Escrow(EscrowCommand::Reseal {
            secret_key,
            share,
            request_key,
            statement,
            approver_keys,
            approvals,
            min_wait,
            output,
        }) => {
            let min_wait = min_wait.as_deref().map(apg_pq::escrow::parse_duration).transpose()?;
            let pinned = apg_pq::escrow::Pinned { approver_keys: &approver_keys, approvals, min_wait };
            eprintln!(
                "{}",
                apg_pq::escrow::reseal(&secret_key, &share, &request_key, &statement, &pinned, output.as_deref())?
            )
        }
        Command::Escrow(EscrowCommand::Approve { secret_key, statement, output }) => {
            eprintln!("{}", apg_pq::escrow::approve(&secret_key, &statement, output.as_deref())?)
        }
        Command::Backup { command: Some(BackupCommand::Reseal { secret_key, bundle, restore_key, output }), .. } => {
            eprintln!("{}", apg_pq::backup_reseal(&secret_key, &bundle, &restore_key, &output)?)
        }
        Command::Backup { command: None, url, password_file, tls, tenant, recipient_key, no_metadata, output } => {
            let (Some(url), Some(recipient_key), Some(output)) = (url, recipient_key, output) else {
                return Err(CliError::Input("backup needs --url, --recipient-key and --output".into()));
            };
            let request = apg_pq::BackupRequest {
                db: tls.database(&url, password_file.as_deref()),
                tenant: tenant.as_deref(),
                recipient_key: &recipient_key,
                include_metadata: !no_metadata,
            };
            eprintln!("{}", apg_pq::backup(&request, &output)?)
        }
        Command::FetchKey { url, password_file, tls, tenant, kind, expect_kid, output } => {
            let kind = match kind {
                KindArg::Kem => PublicKind::Kem,
                KindArg::Dsa => PublicKind::Dsa,
            };
            let kid = apg_pq::fetch_key(&tls.database(&url, password_file.as_deref()), &tenant, kind, expect_kid.as_deref(), &output)?;
            println!("{kid}");
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("apg-pq: {e}");
        std::process::exit(e.exit_code());
    }
}
