//! Codec throughput: frames decoded from a stream of IO-buffer-sized chunks.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use berth::BufPool;
use berth::codec::{Decoder, EncodeBuf, Encoder, InBuf, LengthFieldCodec, LineCodec, LineEnding};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn chunks(pool: &BufPool, data: &[u8]) -> Vec<berth::IoBuf> {
    let mut out = Vec::new();
    pool.copy_in(data, |b| out.push(b));
    out
}

fn decode_all<D: Decoder>(codec: &mut D, input: &[berth::IoBuf]) -> usize {
    let mut inbuf = InBuf::new();
    let mut frames = 0;
    for chunk in input {
        inbuf.push(chunk.clone());
        while let Ok(Some(_)) = codec.decode(&mut inbuf) {
            frames += 1;
        }
    }
    frames
}

fn bench_codecs(c: &mut Criterion) {
    let pool = BufPool::new(16 * 1024, 1024);
    let mut g = c.benchmark_group("decode");

    let packets: Vec<u8> = (0..10_000)
        .flat_map(|i| {
            let n = (i % 200 + 2) as u8;
            std::iter::once(n).chain((1..n).map(|b| b ^ 0x5a))
        })
        .collect();
    let input = chunks(&pool, &packets);
    g.throughput(Throughput::Bytes(packets.len() as u64));
    g.bench_function("length_field_u8_packets", |b| {
        b.iter(|| decode_all(&mut berth::servers::packet_codec(), &input))
    });

    let lines: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("RETR {i} some argument text\r\n").into_bytes())
        .collect();
    let input = chunks(&pool, &lines);
    g.throughput(Throughput::Bytes(lines.len() as u64));
    g.bench_function("line_crlf", |b| {
        b.iter(|| {
            let mut codec = LineCodec::builder()
                .ending(LineEnding::Crlf)
                .max_line_length(255)
                .build();
            decode_all(&mut codec, &input)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    let payload = [7u8; 64];
    g.throughput(Throughput::Elements(1000));
    g.bench_function("length_field_u32_64B_x1000", |b| {
        let mut codec = LengthFieldCodec::new();
        let mut out = EncodeBuf::new(pool.clone());
        b.iter(|| {
            for _ in 0..1000 {
                codec.encode(&payload[..], &mut out).unwrap();
            }
            out.drain(drop);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_codecs);
criterion_main!(benches);
