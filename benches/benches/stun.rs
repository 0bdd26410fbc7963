//! STUN on the ICE path: what answering one connectivity check costs (parse, verify
//! MESSAGE-INTEGRITY and FINGERPRINT of the request; build the signed response).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use stun::{AttrType, Class, Message, MessageBuilder, Method, TransactionId, short_term_key};

fn request(buf: &mut [u8]) -> usize {
    let key = short_term_key("VOkJxbRl1RmTxUk/WvJxBt");
    let mut builder =
        MessageBuilder::new(buf, Method::BINDING, Class::Request, TransactionId([7; 12])).unwrap();
    builder.attribute(AttrType::USERNAME, b"evtj:h6vY").unwrap();
    builder.u32(AttrType::PRIORITY, 0x6e0001ff).unwrap();
    builder.u64(AttrType::ICE_CONTROLLING, 0x932ff9b151263b36).unwrap();
    builder.attribute(AttrType::USE_CANDIDATE, &[]).unwrap();
    builder.message_integrity(&key).unwrap().fingerprint().unwrap();
    builder.finish()
}

fn bench(c: &mut Criterion) {
    let key = short_term_key("VOkJxbRl1RmTxUk/WvJxBt");
    let mut buf = [0u8; 256];
    let len = request(&mut buf);
    let mut group = c.benchmark_group("stun");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse", |b| b.iter(|| Message::parse(black_box(&buf[..len])).unwrap()));
    group.bench_function("parse_verify_request", |b| {
        b.iter(|| {
            let message = Message::parse(black_box(&buf[..len])).unwrap();
            message.verify_fingerprint().unwrap();
            message.verify_integrity(&key).unwrap();
            message.username().unwrap().len()
        })
    });
    let mut out = [0u8; 256];
    group.bench_function("build_signed_response", |b| {
        b.iter(|| {
            let mut response =
                MessageBuilder::new(&mut out, Method::BINDING, Class::Success, TransactionId([7; 12]))
                    .unwrap();
            response.xor_address(AttrType::XOR_MAPPED_ADDRESS, "192.0.2.1:32853".parse().unwrap()).unwrap();
            response.message_integrity(&key).unwrap().fingerprint().unwrap();
            response.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
