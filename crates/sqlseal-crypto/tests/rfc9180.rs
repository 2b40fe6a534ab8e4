//! RFC 9180 Appendix A.3.1 known-answer test for the HPKE suite that
//! `p256-hpke` stanzas use: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
//! AES-128-GCM, base mode.

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::Deserialize;
use sqlseal_crypto::hpke_suite::{Aead, Kdf, Kem};
use sqlseal_testkit::FixedIkm;

#[derive(Deserialize)]
struct Vector {
    mode: u8,
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    info: String,
    #[serde(rename = "ikmE")]
    ikm_e: String,
    #[serde(rename = "pkEm")]
    pk_em: String,
    #[serde(rename = "skEm")]
    sk_em: String,
    #[serde(rename = "ikmR")]
    ikm_r: String,
    #[serde(rename = "pkRm")]
    pk_rm: String,
    #[serde(rename = "skRm")]
    sk_rm: String,
    enc: String,
    encryptions: Vec<Encryption>,
    exports: Vec<Export>,
}

#[derive(Deserialize)]
struct Encryption {
    seq: u64,
    pt: String,
    aad: String,
    ct: String,
}

#[derive(Deserialize)]
struct Export {
    exporter_context: String,
    #[serde(rename = "L")]
    len: usize,
    exported_value: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex in vector file")
}

fn vector() -> Vector {
    let text = include_str!("data/rfc9180-a3-base.json");
    let v: Vector = serde_json::from_str(text).expect("vector file parses");
    assert_eq!((v.mode, v.kem_id, v.kdf_id, v.aead_id), (0, 0x10, 1, 1));
    v
}

#[test]
fn derive_keypair_matches_rfc() {
    let v = vector();
    let (sk_r, pk_r) = Kem::derive_keypair(&h(&v.ikm_r));
    assert_eq!(sk_r.to_bytes().to_vec(), h(&v.sk_rm));
    assert_eq!(pk_r.to_bytes().to_vec(), h(&v.pk_rm));
    let (sk_e, pk_e) = Kem::derive_keypair(&h(&v.ikm_e));
    assert_eq!(sk_e.to_bytes().to_vec(), h(&v.sk_em));
    assert_eq!(pk_e.to_bytes().to_vec(), h(&v.pk_em));
}

#[test]
fn sender_matches_rfc_encryptions_and_exports() {
    let v = vector();
    let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).expect("pkR");
    let (enc, mut ctx) = hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk_r,
        &h(&v.info),
        &mut FixedIkm(h(&v.ikm_e)),
    )
    .expect("setup sender");
    assert_eq!(enc.to_bytes().to_vec(), h(&v.enc));
    let mut seq = 0;
    for e in &v.encryptions {
        while seq < e.seq {
            ctx.seal(b"", b"").expect("advance sequence");
            seq += 1;
        }
        let ct = ctx.seal(&h(&e.pt), &h(&e.aad)).expect("seal");
        assert_eq!(ct, h(&e.ct), "encryption with sequence number {}", e.seq);
        seq += 1;
    }
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        ctx.export(&h(&x.exporter_context), &mut out)
            .expect("export");
        assert_eq!(out, h(&x.exported_value));
    }
}

#[test]
fn receiver_opens_rfc_ciphertexts() {
    let v = vector();
    let sk_r = <Kem as hpke::Kem>::PrivateKey::from_bytes(&h(&v.sk_rm)).expect("skR");
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&h(&v.enc)).expect("enc");
    let mut ctx = hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &sk_r, &enc, &h(&v.info))
        .expect("setup receiver");
    // A sender in lockstep supplies ciphertexts for the sequence numbers the RFC skips.
    let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).expect("pkR");
    let (_, mut filler) = hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk_r,
        &h(&v.info),
        &mut FixedIkm(h(&v.ikm_e)),
    )
    .expect("sender");
    let mut seq = 0;
    for e in &v.encryptions {
        while seq < e.seq {
            let ct = filler.seal(b"", b"").expect("seal filler");
            ctx.open(&ct, b"").expect("open filler");
            seq += 1;
        }
        filler.seal(b"", b"").expect("advance filler");
        let pt = ctx.open(&h(&e.ct), &h(&e.aad)).expect("open");
        assert_eq!(pt, h(&e.pt), "sequence number {}", e.seq);
        seq += 1;
    }
    let mut wrong = h(&v.encryptions[0].ct);
    wrong[0] ^= 1;
    let mut fresh =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &sk_r, &enc, &h(&v.info))
            .expect("setup receiver");
    assert!(fresh.open(&wrong, &h(&v.encryptions[0].aad)).is_err());
}
