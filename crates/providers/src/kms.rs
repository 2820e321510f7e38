//! The `aws_kms` provider: the KEK is a symmetric KMS key in AWS KMS (or a
//! KMS-compatible endpoint). The MDK is generated locally, wrapped with
//! `Encrypt` and unwrapped with `Decrypt`, always under the encryption
//! context of the [`Binding`] (docs/FORMAT.md §6.3), which key policies can
//! require (`kms:EncryptionContext:apg_pqcrypto`). The blob is KMS's own
//! ciphertext blob.
//!
//! Calls go through `aws-sdk-kms` on a current-thread tokio runtime owned by
//! the provider (one per backend), made on first use ([`net`]). Credentials come only
//! from the standard AWS chain of the process (environment, the OS user's
//! profile files, and the instance, container or SSO sources of that chain).
//! Each call is bounded by [`CallLimits::timeout`] and abandoned when
//! [`CallLimits::cancelled`] says so. After a `fork()` a runtime made by the
//! parent is forgotten, never used or dropped.
use crate::{check_id, net::{self, Connected}, Binding, CallLimits, ErrorKind, KeyProvider, ProviderError, Result};
use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
use aws_sdk_kms::{error::DisplayErrorContext, primitives::Blob, Client};
use pqcore::Dek;
use std::collections::HashMap;
use zeroize::{Zeroize, Zeroizing};

/// Which settings configure the provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KmsConfig {
    /// Key id, key ARN, alias name or alias ARN (`apg_pqcrypto.kms_key_id`).
    pub key_id: String,
    /// `kms_region`; when unset, the region of the AWS chain (AWS_REGION,
    /// the profile).
    pub region: Option<String>,
    /// `kms_endpoint`, for a KMS-compatible endpoint; when unset, the
    /// chain's (AWS_ENDPOINT_URL_KMS) or AWS's own.
    pub endpoint: Option<String>,
}

pub struct KmsProvider {
    config: KmsConfig,
    connected: Option<Connected<Client>>,
}

impl KmsProvider {
    /// Nothing is loaded or connected until the first call.
    pub fn new(config: KmsConfig) -> Self {
        Self { config, connected: None }
    }

    /// A client for `key_id` (tests use it to create keys).
    pub fn client(&mut self, limits: &CallLimits) -> Result<(&tokio::runtime::Runtime, &Client)> {
        let c = self.connect(limits)?;
        Ok((&c.runtime, &c.client))
    }

    fn connect(&mut self, limits: &CallLimits) -> Result<&Connected<Client>> {
        let (config, timeout) = (&self.config, limits.timeout);
        Ok(net::connection(&mut self.connected, "aws_kms", |runtime| {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(timeout)
                        .operation_attempt_timeout(timeout)
                        .operation_timeout(timeout)
                        .build(),
                )
                .retry_config(RetryConfig::standard().with_max_attempts(2));
            if let Some(region) = &config.region {
                loader = loader.region(Region::new(region.clone()));
            }
            if let Some(endpoint) = &config.endpoint {
                loader = loader.endpoint_url(endpoint);
            }
            // Loading reads profile files and, without a configured region,
            // may ask the instance metadata service: bounded like a call.
            let sdk = runtime
                .block_on(async { tokio::time::timeout(timeout, loader.load()).await })
                .map_err(|_| ProviderError::timed_out("aws_kms", limits))?;
            if sdk.region().is_none() {
                return Err(ProviderError::new(
                    ErrorKind::Misconfigured,
                    "no AWS region is configured for the aws_kms master key provider",
                    Some("set apg_pqcrypto.kms_region, or AWS_REGION in the server's environment"),
                    "aws_kms: no region",
                ));
            }
            Ok(Client::new(&sdk))
        })?)
    }

    /// Runs a KMS request within `limits`.
    fn run<T, E>(
        &mut self,
        limits: &CallLimits,
        doing: &str,
        request: impl FnOnce(&Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<T, E>> + '_>>,
    ) -> Result<T>
    where
        E: std::error::Error + KmsErrorKind + 'static,
    {
        let key_id = self.config.key_id.clone();
        let connected = self.connect(limits)?;
        let future = request(&connected.client);
        net::block_on(&connected.runtime, "aws_kms", limits, async move {
            future.await.map_err(|e| e.classify(doing, &key_id))
        })
    }
}

fn unavailable(detail: String) -> ProviderError {
    net::unavailable("aws_kms", detail)
}

fn context(binding: &Binding) -> HashMap<String, String> {
    binding.encryption_context().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl KeyProvider for KmsProvider {
    fn name(&self) -> &'static str {
        "aws_kms"
    }

    /// The configured key id (as given: id, ARN or alias).
    fn key_ref(&self) -> String {
        self.config.key_id.clone()
    }

    fn wrap(&mut self, mdk: &Dek, binding: &Binding, limits: &CallLimits) -> Result<Vec<u8>> {
        let key_id = self.config.key_id.clone();
        let context = context(binding);
        let plaintext = Blob::new(mdk.expose().to_vec());
        let out = self.run(limits, "Encrypt", move |client| {
            Box::pin(client.encrypt().key_id(key_id).plaintext(plaintext).set_encryption_context(Some(context)).send())
        })?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| unavailable("aws_kms: Encrypt returned no ciphertext".into()))
    }

    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Dek> {
        let key_id = self.config.key_id.clone();
        let context = context(binding);
        let blob = Blob::new(wrapped.to_vec());
        let out = self.run(limits, "Decrypt", move |client| {
            Box::pin(client.decrypt().key_id(key_id).ciphertext_blob(blob).set_encryption_context(Some(context)).send())
        })?;
        let mut plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let key = Dek::from_slice(&plain)
            .map_err(|_| ProviderError::wrong_key("aws_kms", "aws_kms: Decrypt returned a key that is not 32 bytes"));
        plain.zeroize();
        check_id("aws_kms", key?, binding)
    }
}

/// How a KMS operation's error maps onto [`ErrorKind`].
pub trait KmsErrorKind {
    fn classify(&self, doing: &str, key_id: &str) -> ProviderError;
}

impl<E, R> KmsErrorKind for aws_sdk_kms::error::SdkError<E, R>
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn classify(&self, doing: &str, key_id: &str) -> ProviderError {
        use aws_sdk_kms::error::SdkError;
        let detail = format!("aws_kms: {doing} with key \"{key_id}\": {}", DisplayErrorContext(self));
        match self {
            SdkError::TimeoutError(_) => ProviderError::new(
                ErrorKind::TimedOut,
                "the aws_kms master key provider did not answer in time",
                Some("check that the endpoint is reachable; apg_pqcrypto.provider_timeout bounds each call"),
                detail,
            ),
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("");
                match code {
                    "InvalidCiphertextException" | "IncorrectKeyException" => ProviderError::wrong_key("aws_kms", detail),
                    "NotFoundException" | "DisabledException" | "KMSInvalidStateException" | "AccessDeniedException"
                    | "InvalidKeyUsageException" | "UnrecognizedClientException" | "InvalidSignatureException"
                    | "IncompleteSignature" | "InvalidClientTokenId" => ProviderError::new(
                        ErrorKind::Misconfigured,
                        "the aws_kms master key provider refused the request",
                        Some("check apg_pqcrypto.kms_key_id, the key's state and policy, and the server's AWS credentials; the server log has KMS's answer"),
                        detail,
                    ),
                    _ => unavailable(detail),
                }
            }
            SdkError::ConstructionFailure(_) => ProviderError::new(
                ErrorKind::Misconfigured,
                "the aws_kms master key provider is not configured",
                Some("check the kms_* settings and the server's AWS credentials; the server log has the error"),
                detail,
            ),
            _ => unavailable(detail),
        }
    }
}
