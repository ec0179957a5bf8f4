//! RSA-2048 signature checks on AVX-512 IFMA: the public operation `s^65537 mod n` in
//! 52-bit limbs, eight to a vector register, then RFC 8017's encode-and-compare.
//!
//! Why it exists: a new token's check is almost all one modular exponentiation, and aws-lc
//! runs it with scalar `mulx` code (12.6 µs on the benchmark host); its AVX-512 code serves
//! only private keys. This does the same arithmetic in 7.6 µs there. Only public values
//! enter it (the key, the token, its signature), so nothing in it needs to be constant-time.
//! It decides exactly as aws-lc does (tests below compare the two on the raw operation and
//! on whole signatures); a key or CPU it does not fit is left to aws-lc.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm_cvtsi128_si64, _mm512_add_epi64, _mm512_alignr_epi64, _mm512_castsi512_si128,
    _mm512_loadu_epi64, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_maskz_set1_epi64,
    _mm512_set1_epi64, _mm512_setzero_si512, _mm512_storeu_epi64,
};

use jsonwebtoken::Algorithm;

/// Limbs of 52 bits: 40 hold 2080 bits, which leaves a 2048-bit modulus the headroom that
/// lets each product skip the final subtraction (Montgomery radix R = 2^2080).
const LIMBS: usize = 40;
const LANES: usize = 8;
const VECTORS: usize = LIMBS / LANES;
const MASK: u64 = (1 << 52) - 1;
/// The modulus and signature length this serves.
const BYTES: usize = 256;

type Limbs = [u64; LIMBS];

/// A 2048-bit RSA public key with exponent 65537, prepared for the vector unit.
pub struct PublicKey {
    n: Limbs,
    /// R² mod n, to bring a signature into Montgomery form.
    rr: Limbs,
    /// −n⁻¹ mod 2^52.
    k0: u64,
}

impl PublicKey {
    /// `None` unless this CPU has AVX-512 IFMA and the key is 2048 bits with e = 65537: the
    /// only shape Clerk issues, and the only one measured.
    pub fn new(n: &[u8], e: &[u8]) -> Option<Self> {
        let supported = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma");
        let n_bytes: &[u8; BYTES] = n.try_into().ok()?;
        if !supported || e != [1, 0, 1] || n_bytes[0] & 0x80 == 0 || n_bytes[BYTES - 1] & 1 == 0 {
            return None;
        }
        let n = from_bytes(n_bytes);
        // n⁻¹ mod 2^64 by Newton's iteration: each step doubles the correct low bits.
        let mut inverse: u64 = 1;
        for _ in 0..6 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(n[0].wrapping_mul(inverse)));
        }
        let k0 = inverse.wrapping_neg() & MASK;
        // 2^(2·2080) mod n by doubling: slow and plainly right, and run once per key.
        let mut rr = [0; LIMBS];
        rr[0] = 1;
        for _ in 0..2 * 52 * LIMBS {
            for limb in rr.iter_mut() {
                *limb <<= 1;
            }
            normalize(&mut rr);
            if !less(&rr, &n) {
                subtract(&mut rr, &n);
            }
        }
        Some(Self { n, rr, k0 })
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2): the signature must be as long as
    /// the modulus and below it, and `s^e mod n` must equal the expected encoding byte for
    /// byte, so no lenient parse of the padding can be tricked.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let (digest, prefix): (_, &[u8]) = match alg {
            Algorithm::RS256 => (&aws_lc_rs::digest::SHA256, &SHA256_INFO),
            Algorithm::RS384 => (&aws_lc_rs::digest::SHA384, &SHA384_INFO),
            Algorithm::RS512 => (&aws_lc_rs::digest::SHA512, &SHA512_INFO),
            _ => return false,
        };
        let Some(decoded) = self.public(signature) else {
            return false;
        };
        let hash = aws_lc_rs::digest::digest(digest, message);
        let hash = hash.as_ref();
        let info = BYTES - prefix.len() - hash.len();
        decoded[..2] == [0, 1]
            && decoded[2..info - 1].iter().all(|&b| b == 0xff)
            && decoded[info - 1] == 0
            && decoded[info..info + prefix.len()] == *prefix
            && decoded[info + prefix.len()..] == *hash
    }

    /// `s^65537 mod n`, or `None` for a signature of the wrong length or not below n.
    fn public(&self, signature: &[u8]) -> Option<[u8; BYTES]> {
        let s = from_bytes(signature.try_into().ok()?);
        if !less(&s, &self.n) {
            return None;
        }
        let mut one = [0; LIMBS];
        one[0] = 1;
        // SAFETY: `new` made this key only on a CPU with AVX-512F and IFMA.
        let r = unsafe {
            let base = self.multiply(&s, &self.rr);
            let mut x = base;
            for _ in 0..16 {
                x = self.multiply(&x, &x);
            }
            let x = self.multiply(&x, &base);
            self.multiply(&x, &one)
        };
        // Below n already: x < 2n makes x·1/R + m·n/R < n + 1, and n itself would need
        // x ≡ 0, which only s = 0 gives, and that comes out 0.
        debug_assert!(less(&r, &self.n));
        Some(to_bytes(&r))
    }

    /// Montgomery multiplication: `a·b/R mod n`, below 2n when a and b are. One limb of b per
    /// round: add a·bᵢ and m·n (m chosen to clear the lowest limb), shift down a limb. The
    /// low and high halves of each 104-bit product land a limb apart, so the high halves are
    /// added after the shift; limbs accumulate in 64 bits and are normalized once at the end
    /// (40 rounds of four terms below 2^52 stay under 2^60).
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn multiply(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let av = load(a);
        let nv = load(&self.n);
        let zero = _mm512_setzero_si512();
        let mut r = [zero; VECTORS];
        // The lowest limb, read out at the end of each round: m needs it with a[0]·bᵢ added,
        // and that sum is quicker made here than waited for from the vector unit.
        let mut r0: u64 = 0;
        for &bi in b {
            let bv = _mm512_set1_epi64(bi as i64);
            for (r, a) in r.iter_mut().zip(&av) {
                *r = _mm512_madd52lo_epu64(*r, *a, bv);
            }
            let t = r0 + low52(a[0], bi);
            let m = t.wrapping_mul(self.k0) & MASK;
            let mv = _mm512_set1_epi64(m as i64);
            for (r, n) in r.iter_mut().zip(&nv) {
                *r = _mm512_madd52lo_epu64(*r, *n, mv);
            }
            let carry = (t + low52(self.n[0], m)) >> 52;
            for v in 0..VECTORS - 1 {
                r[v] = _mm512_alignr_epi64::<1>(r[v + 1], r[v]);
            }
            r[VECTORS - 1] = _mm512_alignr_epi64::<1>(zero, r[VECTORS - 1]);
            r[0] = _mm512_add_epi64(r[0], _mm512_maskz_set1_epi64(1, carry as i64));
            for ((r, a), n) in r.iter_mut().zip(&av).zip(&nv) {
                *r = _mm512_madd52hi_epu64(*r, *a, bv);
                *r = _mm512_madd52hi_epu64(*r, *n, mv);
            }
            r0 = first(r[0]);
        }
        let mut out = store(&r);
        normalize(&mut out);
        out
    }
}

/// DigestInfo prefixes (RFC 8017 §9.2, note 1), each followed by the hash.
const SHA256_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const SHA384_INFO: [u8; 19] = [
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
const SHA512_INFO: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

fn low52(a: u64, b: u64) -> u64 {
    a.wrapping_mul(b) & MASK
}

#[target_feature(enable = "avx512f")]
fn load(x: &Limbs) -> [__m512i; VECTORS] {
    let mut out = [_mm512_setzero_si512(); VECTORS];
    for (v, out) in out.iter_mut().enumerate() {
        // SAFETY: each read is eight u64s inside `x`, which holds VECTORS × 8 of them.
        *out = unsafe { _mm512_loadu_epi64(x[v * LANES..].as_ptr().cast()) };
    }
    out
}

#[target_feature(enable = "avx512f")]
fn store(r: &[__m512i; VECTORS]) -> Limbs {
    let mut out = [0; LIMBS];
    for (v, r) in r.iter().enumerate() {
        // SAFETY: each write is eight u64s inside `out`, which holds VECTORS × 8 of them.
        unsafe { _mm512_storeu_epi64(out[v * LANES..].as_mut_ptr().cast(), *r) };
    }
    out
}

#[target_feature(enable = "avx512f")]
fn first(r: __m512i) -> u64 {
    _mm_cvtsi128_si64(_mm512_castsi512_si128(r)) as u64
}

/// Carries every limb's bits above 52 into the next; the top limb keeps its overflow.
fn normalize(x: &mut Limbs) {
    let mut carry = 0;
    for limb in x.iter_mut() {
        let t = *limb + carry;
        *limb = t & MASK;
        carry = t >> 52;
    }
    x[LIMBS - 1] |= carry << 52;
}

fn less(a: &Limbs, b: &Limbs) -> bool {
    a.iter().rev().cmp(b.iter().rev()).is_lt()
}

/// `a -= b`, for a ≥ b.
fn subtract(a: &mut Limbs, b: &Limbs) {
    let mut borrow = 0;
    for (a, b) in a.iter_mut().zip(b) {
        let t = a.wrapping_sub(*b).wrapping_sub(borrow);
        *a = t & MASK;
        borrow = t >> 63;
    }
}

/// Big-endian bytes into little-endian 52-bit limbs.
fn from_bytes(bytes: &[u8; BYTES]) -> Limbs {
    let mut words = [0u64; BYTES / 8 + 1];
    for (i, b) in bytes.iter().rev().enumerate() {
        words[i / 8] |= u64::from(*b) << (8 * (i % 8));
    }
    std::array::from_fn(|j| {
        let (word, shift) = (j * 52 / 64, j * 52 % 64);
        let mut limb = words[word] >> shift;
        if shift > 12 {
            limb |= words[word + 1] << (64 - shift);
        }
        limb & MASK
    })
}

fn to_bytes(x: &Limbs) -> [u8; BYTES] {
    let mut words = [0u64; BYTES / 8 + 1];
    for (j, limb) in x.iter().enumerate() {
        let (word, shift) = (j * 52 / 64, j * 52 % 64);
        words[word] |= limb << shift;
        if shift > 12 {
            words[word + 1] |= limb >> (64 - shift);
        }
    }
    std::array::from_fn(|i| (words[(BYTES - 1 - i) / 8] >> (8 * ((BYTES - 1 - i) % 8))) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_sys as sys;
    use std::ffi::c_int;

    /// aws-lc's own RSA on one freshly generated 2048-bit key: the oracle.
    struct AwsLc(*mut sys::RSA);

    impl AwsLc {
        fn generate() -> Self {
            unsafe {
                let rsa = sys::RSA_new();
                let e = sys::BN_new();
                assert_eq!(sys::BN_set_word(e, 65537), 1);
                assert_eq!(
                    sys::RSA_generate_key_ex(rsa, 2048, e, std::ptr::null_mut()),
                    1
                );
                sys::BN_free(e);
                Self(rsa)
            }
        }

        fn n(&self) -> [u8; BYTES] {
            let mut n = [0; BYTES];
            let written =
                unsafe { sys::BN_bn2bin_padded(n.as_mut_ptr(), BYTES, sys::RSA_get0_n(self.0)) };
            assert_eq!(written, 1);
            n
        }

        /// The raw public operation, `None` where aws-lc refuses the input.
        fn public(&self, s: &[u8]) -> Option<[u8; BYTES]> {
            let mut out = [0; BYTES];
            let padding = sys::RSA_NO_PADDING as c_int;
            let len = unsafe {
                sys::RSA_public_decrypt(s.len(), s.as_ptr(), out.as_mut_ptr(), self.0, padding)
            };
            (len == BYTES as c_int).then_some(out)
        }

        /// The raw private operation: a "signature" of any encoded message at all.
        fn private(&self, em: &[u8; BYTES]) -> [u8; BYTES] {
            let mut out = [0; BYTES];
            let padding = sys::RSA_NO_PADDING as c_int;
            let len = unsafe {
                sys::RSA_private_encrypt(BYTES, em.as_ptr(), out.as_mut_ptr(), self.0, padding)
            };
            assert_eq!(len, BYTES as c_int);
            out
        }

        fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
            let (nid, hash) = digest(alg, message);
            let mut out = vec![0; BYTES];
            let mut len = 0;
            let ok = unsafe {
                sys::RSA_sign(
                    nid,
                    hash.as_ptr(),
                    hash.len(),
                    out.as_mut_ptr(),
                    &mut len,
                    self.0,
                )
            };
            assert_eq!((ok, len as usize), (1, BYTES));
            out
        }

        fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            let (nid, hash) = digest(alg, message);
            let ok = unsafe {
                sys::RSA_verify(
                    nid,
                    hash.as_ptr(),
                    hash.len(),
                    signature.as_ptr(),
                    signature.len(),
                    self.0,
                )
            };
            unsafe { sys::ERR_clear_error() };
            ok == 1
        }
    }

    impl Drop for AwsLc {
        fn drop(&mut self) {
            unsafe { sys::RSA_free(self.0) }
        }
    }

    fn digest(alg: Algorithm, message: &[u8]) -> (c_int, Vec<u8>) {
        let (nid, algorithm) = match alg {
            Algorithm::RS256 => (sys::NID_sha256, &aws_lc_rs::digest::SHA256),
            Algorithm::RS384 => (sys::NID_sha384, &aws_lc_rs::digest::SHA384),
            Algorithm::RS512 => (sys::NID_sha512, &aws_lc_rs::digest::SHA512),
            other => panic!("not an RSA algorithm: {other:?}"),
        };
        let hash = aws_lc_rs::digest::digest(algorithm, message);
        (nid as c_int, hash.as_ref().to_vec())
    }

    /// Reproducible bytes: xorshift, so a failure can be replayed.
    struct Bytes(u64);

    impl Bytes {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = self.0 as u8;
            }
        }
    }

    fn ifma() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
    }

    /// Both sides of one key, or `None` on a CPU without IFMA, where `new` must refuse.
    fn pair() -> Option<(AwsLc, PublicKey)> {
        let oracle = AwsLc::generate();
        let key = PublicKey::new(&oracle.n(), &[1, 0, 1]);
        assert_eq!(
            key.is_some(),
            ifma(),
            "taken exactly where the CPU can run it"
        );
        Some((oracle, key?))
    }

    fn add(a: &[u8; BYTES], k: u8) -> [u8; BYTES] {
        let mut out = *a;
        let mut carry = k;
        for b in out.iter_mut().rev() {
            let (sum, over) = b.overflowing_add(carry);
            *b = sum;
            carry = u8::from(over);
        }
        out
    }

    #[test]
    fn the_public_operation_is_aws_lcs() {
        let mut random = Bytes(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2 {
            let Some((oracle, key)) = pair() else { return };
            let n = oracle.n();
            let mut inputs = vec![[0; BYTES], add(&[0; BYTES], 1), add(&[0; BYTES], 2)];
            // n − 1 and n − 2, where every limb is at its largest.
            let mut below = n;
            below[BYTES - 1] -= 1;
            inputs.push(below);
            below[BYTES - 1] -= 1;
            inputs.push(below);
            for _ in 0..300 {
                let mut s = [0; BYTES];
                random.fill(&mut s);
                // Half just below n's top byte, half anywhere (some above n: both refuse).
                if s[1] & 1 == 0 {
                    s[0] = n[0] - 1;
                }
                inputs.push(s);
            }
            inputs.extend([n, add(&n, 1), [0xff; BYTES]]);
            for s in &inputs {
                assert_eq!(key.public(s), oracle.public(s), "s = {s:02x?}");
            }
            assert!(
                key.public(&n).is_none(),
                "a signature not below n is refused"
            );
            // Lengths other than the modulus's are refused by both.
            assert_eq!(key.public(&n[1..]), None);
            assert_eq!(oracle.public(&n[1..]), None);
        }
    }

    #[test]
    fn signatures_are_judged_as_aws_lc_judges_them() {
        let Some((oracle, key)) = pair() else { return };
        let mut random = Bytes(0x2545_f491_4f6c_dd1d);
        for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
            for length in [0, 1, 64, 700, 4096] {
                let mut message = vec![0; length];
                random.fill(&mut message);
                let signature = oracle.sign(alg, &message);
                assert!(key.verify(alg, &message, &signature));
                assert!(oracle.verify(alg, &message, &signature));

                let mut flipped = signature.clone();
                let mut at = [0; 2];
                random.fill(&mut at);
                flipped[usize::from(u16::from_le_bytes(at)) % BYTES] ^= 1 << (at[0] % 8);
                let mut other = message.clone();
                other.push(0);
                let mut padded = vec![0];
                padded.extend_from_slice(&signature);
                for (message, signature) in [
                    (&message, &flipped),
                    (&other, &signature),
                    (&message, &padded),
                    (&message, &signature[1..].to_vec()),
                ] {
                    assert!(!key.verify(alg, message, signature));
                    assert!(!oracle.verify(alg, message, signature));
                }
            }
        }
        let message = b"one hash, another name";
        let signature = oracle.sign(Algorithm::RS256, message);
        assert!(!key.verify(Algorithm::RS384, message, &signature));
        assert!(!key.verify(Algorithm::ES256, message, &signature));
    }

    /// Properly signed encodings that are not the one encoding: the forgeries lenient
    /// parsers of the padding have accepted. Both must refuse every one.
    #[test]
    fn every_encoding_but_the_exact_one_is_refused() {
        let Some((oracle, key)) = pair() else { return };
        let message = b"{\"sub\":\"user_2\"}";
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let encode = |parts: &[&[u8]]| {
            let tail: Vec<u8> = parts.concat();
            let mut em = [0xff; BYTES];
            em[0] = 0;
            em[1] = 1;
            em[BYTES - tail.len() - 1] = 0;
            em[BYTES - tail.len()..].copy_from_slice(&tail);
            em
        };
        let exact = encode(&[&SHA256_INFO, hash.as_ref()]);
        let signature = oracle.private(&exact);
        assert!(
            key.verify(Algorithm::RS256, message, &signature),
            "the exact one passes"
        );

        let mut forgeries = Vec::new();
        // Garbage after the hash, the padding shortened to make room.
        forgeries.push(encode(&[&SHA256_INFO, hash.as_ref(), &[0xab; 8]]));
        // The DigestInfo without its NULL parameters.
        let mut no_null = SHA256_INFO.to_vec();
        no_null.drain(13..15);
        no_null[1] -= 2;
        no_null[3] -= 2;
        forgeries.push(encode(&[&no_null, hash.as_ref()]));
        // Block type 2, and a padding byte that is not 0xff.
        let mut em = exact;
        em[1] = 2;
        forgeries.push(em);
        let mut em = exact;
        em[40] = 0xfe;
        forgeries.push(em);
        // Another hash's prefix around the right hash.
        forgeries.push(encode(&[&SHA512_INFO, hash.as_ref()]));
        for em in &forgeries {
            let signature = oracle.private(em);
            assert!(
                !key.verify(Algorithm::RS256, message, &signature),
                "{em:02x?}"
            );
            assert!(!oracle.verify(Algorithm::RS256, message, &signature));
        }
    }

    #[test]
    fn only_2048_bit_keys_with_exponent_65537_are_taken() {
        let Some((oracle, _)) = pair() else { return };
        let n = oracle.n();
        assert!(PublicKey::new(&n, &[1, 0, 1]).is_some());
        assert!(PublicKey::new(&n, &[3]).is_none(), "another exponent");
        assert!(PublicKey::new(&n[1..], &[1, 0, 1]).is_none(), "2040 bits");
        let mut short = n;
        short[0] &= 0x7f;
        assert!(PublicKey::new(&short, &[1, 0, 1]).is_none(), "2047 bits");
        let mut even = n;
        even[BYTES - 1] &= 0xfe;
        assert!(
            PublicKey::new(&even, &[1, 0, 1]).is_none(),
            "an even modulus"
        );
        assert!(
            PublicKey::new(&[0xff; 384], &[1, 0, 1]).is_none(),
            "3072 bits"
        );
    }
}
