//! Which partition a key lands in: Kafka's default partitioner (murmur2, as the Java client
//! and librdkafka's `murmur2_random` compute it), so that a central knows, from a CP's id
//! alone, which of its consumer group's partitions carries that CP's records.

/// The partition of `key` in a topic of `partitions` partitions.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let partitions = partitions.max(1) as u32;
    ((murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions) as i32
}

/// MurmurHash2, 32-bit, with Kafka's seed: a hash for spreading keys, not a secret.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;
    use std::time::Duration;

    /// The Java client's own test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn hashes_as_the_java_client_does() {
        let cases: [(&str, i32); 4] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
    }

    /// librdkafka, configured as our producers are, puts every key where we say.
    #[tokio::test]
    async fn agrees_with_librdkafka() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("t", 6, 1).unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap();
        for n in 0..200 {
            let key = format!("CP{n:03}");
            let delivery = producer
                .send(
                    FutureRecord::to("t").key(&key).payload("x"),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            assert_eq!(delivery.partition, partition_of(&key, 6), "{key}");
        }
    }
}
