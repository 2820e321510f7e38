//! Signature envelopes ('G'): `01 47 kid(pk) signature`.
use crate::{
    format::{KIND_SIGNATURE, SIGNATURE_ENVELOPE_LEN, VERSION_1},
    rng::{OsRandom, RandomSource},
    Error, SignatureEnvelope, SigningKey, VerifyingKey,
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
        let mut out = Vec::with_capacity(SIGNATURE_ENVELOPE_LEN);
        out.extend_from_slice(&[VERSION_1, KIND_SIGNATURE]);
        out.extend_from_slice(self.kid().as_bytes());
        out.extend_from_slice(&signature);
        Ok(out)
    }
}

impl VerifyingKey {
    /// True when the envelope names this key and its signature is valid.
    pub fn verify_envelope(
        &self,
        envelope: &SignatureEnvelope<'_>,
        message: &[u8],
        context: &[u8],
    ) -> Result<bool, Error> {
        if envelope.kid() != self.kid() {
            return Ok(false);
        }
        self.verify(message, context, envelope.signature())
    }
}
