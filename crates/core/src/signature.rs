//! Signature envelopes: `01 47 kid(pk) signature` ('G', ML-DSA-65) and
//! `01 48 kid(pk) signature` ('H', ML-DSA-87).
use crate::{
    format::{KIND_SIGNATURE, KIND_SIGNATURE_87, SIGNATURE_OFFSET, VERSION_1},
    rng::{OsRandom, RandomSource},
    Error, SignatureEnvelope, SignatureSuite, SigningKey, VerifyingKey,
};

impl SigningKey {
    /// A signature envelope over `message` with FIPS 204 context `context`.
    pub fn sign_envelope(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_envelope_from(&mut OsRandom, message, context)
    }

    pub(crate) fn sign_envelope_from(
        &self,
        rng: &mut impl RandomSource,
        message: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let signature = self.sign_from(rng, message, context)?;
        let kind = match self.suite() {
            SignatureSuite::MlDsa65 => KIND_SIGNATURE,
            SignatureSuite::MlDsa87 => KIND_SIGNATURE_87,
        };
        let mut out = Vec::with_capacity(SIGNATURE_OFFSET + signature.len());
        out.extend_from_slice(&[VERSION_1, kind]);
        out.extend_from_slice(self.kid().as_bytes());
        out.extend_from_slice(&signature);
        Ok(out)
    }
}

impl VerifyingKey {
    /// True when the envelope names this key, is of this key's suite, and
    /// its signature is valid.
    pub fn verify_envelope(
        &self,
        envelope: &SignatureEnvelope<'_>,
        message: &[u8],
        context: &[u8],
    ) -> Result<bool, Error> {
        if envelope.kid() != self.kid() || envelope.suite() != self.suite() {
            return Ok(false);
        }
        self.verify(message, context, envelope.signature())
    }
}
